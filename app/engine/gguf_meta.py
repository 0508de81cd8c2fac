"""A few metadata values from a GGUF file's header (the chat template, special token ids).

The header is a list of typed key/value pairs before the tensor table; this reads only that list and
keeps only the keys asked for. (The `gguf` package's reader parses the whole tensor table too: about
5 s for the embedded model, holding the GIL.)
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    pass


def _left(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size - f.tell()


def _read(f: BinaryIO, size: int) -> bytes:
    if size > _left(f):  # a length past the end of the file: never allocated
        raise GGUFError("truncated GGUF header")
    data = f.read(size)
    if len(data) != size:
        raise GGUFError("truncated GGUF header")
    return data


def _unpack(f: BinaryIO, fmt: str) -> Any:
    return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]


def _string(f: BinaryIO) -> str:
    return _read(f, _unpack(f, "<Q")).decode("utf-8", errors="replace")


def _value(f: BinaryIO, kind: int, keep: bool) -> Any:
    if kind in _SCALARS:
        return _unpack(f, _SCALARS[kind])
    if kind == _STRING:
        if keep:
            return _string(f)
        f.seek(_unpack(f, "<Q"), 1)
        return None
    if kind == _ARRAY:
        item_kind, count = _unpack(f, "<I"), _unpack(f, "<Q")
        if count > _left(f):  # every item takes at least a byte
            raise GGUFError("truncated GGUF header")
        if item_kind in _SCALARS and not keep:
            f.seek(struct.calcsize(_SCALARS[item_kind]) * count, 1)
            return None
        items = [_value(f, item_kind, keep) for _ in range(count)]
        return items if keep else None
    raise GGUFError(f"unknown GGUF value type {kind}")


def read_metadata(path: Path, keys: set[str]) -> dict[str, Any]:
    """The values of `keys` present in the file's header."""
    found: dict[str, Any] = {}
    with open(path, "rb") as f:
        if _read(f, 4) != b"GGUF":
            raise GGUFError(f"{path} is not a GGUF file")
        version = _unpack(f, "<I")
        count_fmt = "<I" if version == 1 else "<Q"
        _unpack(f, count_fmt)  # tensors
        for _ in range(_unpack(f, count_fmt)):
            key = _string(f)
            value = _value(f, _unpack(f, "<I"), key in keys)
            if key in keys:
                found[key] = value
                if len(found) == len(keys):
                    break
    return found
