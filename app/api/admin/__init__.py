"""Model management under the admin scope: the native routes (views), their bodies (schemas), and
the NDJSON stream of a pull shared with Ollama's shell (pulls)."""
