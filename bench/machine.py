"""What machine a benchmark ran on: CPU model, cores, SIMD extensions, the engine's version."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

SIMD_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile")


def cpuinfo_lines() -> list[str]:
    return Path("/proc/cpuinfo").read_text().splitlines()


def cpu_flags() -> set[str]:
    return set(next((line for line in cpuinfo_lines() if line.startswith("flags")), "").split())


def cpu_has_amx() -> bool:
    return any(flag.startswith("amx") for flag in cpu_flags())


def describe() -> dict[str, Any]:
    """CPU model, core count, AMX and the SIMD extensions that matter to the kernels, mistralrs version."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo_lines() if line.startswith("model name")), ""
    )
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "amx": cpu_has_amx(),
        "simd": [flag for flag in SIMD_FLAGS if flag in cpu_flags()],
        "mistralrs": importlib.metadata.version("mistralrs"),
    }
