"""Ollama's API under /ollama (views), its request bodies (schemas) and its NDJSON answers (writer)."""
