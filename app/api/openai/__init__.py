"""OpenAI's API under /v1: chat completions, completions and models (chat), the Responses API
(responses, responses_events), their request schemas and their answer writers."""
