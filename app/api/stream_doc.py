"""The stream format, documented once for every streaming operation."""

STREAM_DESCRIPTION = """`text/event-stream`. Errors found before generation starts (validation,
unknown model, prompt too long, no free slot) are ordinary JSON error responses with their status.
Once the stream begins (status 200) it carries these events, each one `event:` line and one JSON
`data:` line:

- `token`: `{"delta": "text"}`, one per generated text piece, in order.
- `done` (last): the same fields as the non-streaming response (`text` or `message`, `model`,
  `finish_reason`, `usage`, `timings`).
- `error` (last, instead of `done`): `{"error": {...}}` in the error envelope, when generation fails
  after the stream began.

Closing the connection cancels the generation in the engine and frees its slot."""
