"""The engine's log lines become log records with their level and module."""

from __future__ import annotations

import logging

from app.observability.engine_logs import parse


def test_a_coloured_engine_line_is_parsed():
    line = (
        "\x1b[2m2026-11-25T01:04:36.103625Z\x1b[0m \x1b[32m INFO\x1b[0m "
        "\x1b[2mmistralrs_core::kv_cache\x1b[0m\x1b[2m:\x1b[0m Using f16 KV cache\n"
    )
    assert parse(line) == (logging.INFO, "mistralrs_core::kv_cache", "Using f16 KV cache")


def test_a_warning_without_colour():
    line = (
        "2026-11-25T01:10:55.659140Z  WARN mistralrs_core::pipeline::paths: No chat template source found.\n"
    )
    assert parse(line) == (
        logging.WARNING,
        "mistralrs_core::pipeline::paths",
        "No chat template source found.",
    )


def test_an_unknown_shape_is_kept_whole():
    assert parse("   0: <candle_core::error::Error>::bt\n") == (
        logging.INFO,
        "",
        "   0: <candle_core::error::Error>::bt",
    )
