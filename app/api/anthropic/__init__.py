"""Anthropic's Messages API under /v1/messages: the views, the request schemas and the event writer."""
