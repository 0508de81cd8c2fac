"""The native API under /api and /health: generation, chat, tokens, models, probes, and the
playground page at /."""
