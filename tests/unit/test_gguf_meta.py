"""The GGUF header reader: the values asked for, and a clear error (never an allocation of a length read
from a broken file) for a header that lies."""

from __future__ import annotations

import struct

import pytest

from app.engine.gguf_meta import GGUFError, read_metadata

TEMPLATE = "tokenizer.chat_template"


def text(value: str) -> bytes:
    return struct.pack("<Q", len(value.encode())) + value.encode()


def header(*pairs: bytes) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(pairs)) + b"".join(pairs)


def test_the_values_asked_for_are_read(tmp_path):
    path = tmp_path / "m.gguf"
    bos = text("tokenizer.ggml.bos_token_id") + struct.pack("<II", 4, 1)
    path.write_bytes(header(bos, text(TEMPLATE) + struct.pack("<I", 8) + text("{{ x }}")))
    assert read_metadata(path, {TEMPLATE, "tokenizer.ggml.bos_token_id"}) == {
        TEMPLATE: "{{ x }}",
        "tokenizer.ggml.bos_token_id": 1,
    }


@pytest.mark.parametrize(
    "pair",
    [
        text(TEMPLATE) + struct.pack("<IQ", 8, 2**62),  # a string longer than any file
        text("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2**60),  # an array of 2^60 strings
        struct.pack("<Q", 2**61),  # a key longer than any file
    ],
)
def test_a_length_past_the_end_of_the_file_is_a_clear_error(tmp_path, pair):
    path = tmp_path / "broken.gguf"
    path.write_bytes(header(pair))
    with pytest.raises(GGUFError, match="truncated"):
        read_metadata(path, {TEMPLATE, "tokenizer.ggml.tokens"})
