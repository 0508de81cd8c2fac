"""llama.cpp's llama-server, the reference: the binary bench/build_llama_server.sh builds, its command
line (parallel slots, context per slot) and what it says about its build."""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from bench.machine import cpu_has_amx
from bench.processes import HOST, ROOT, Server, spawn

LLAMA = "llama.cpp"
BUILD_SCRIPT = ROOT / "bench" / "build_llama_server.sh"
SLOT_CONTEXT = 2048  # tokens each parallel slot keeps when there are several
SINGLE_CONTEXT = 4096  # one slot: the context it always had


def binary(path: Path | None) -> Path:
    """The given binary, or the one bench/build_llama_server.sh builds (running it if needed)."""
    if path is not None:
        return path
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=True)
    return Path(done.stdout.strip().splitlines()[-1])


def context(slots: int) -> int:
    """-c for `slots` parallel slots: 4096 for one, 2048 per slot for more."""
    return max(SINGLE_CONTEXT, SLOT_CONTEXT * slots)


def command(binary: Path, gguf: Path, threads: int, slots: int = 1) -> list[str]:
    """llama-server on the file with `slots` parallel slots (-np) and `threads` threads; `{port}` left to
    fill. --no-repack on AMX CPUs, where a native build crashes while repacking the weights."""
    line = [str(binary), "-m", str(gguf), "-c", str(context(slots)), "--port", "{port}", "--host", HOST]
    line += ["-t", str(threads), "-np", str(slots)]
    return [*line, "--no-repack"] if cpu_has_amx() else line


def server(
    binary: Path, gguf: Path, threads: int, slots: int, log_path: Path
) -> AbstractContextManager[Server]:
    """llama-server on a free loopback port; always stopped."""
    return spawn(LLAMA, command(binary, gguf, threads, slots), dict(os.environ), log_path)


def version(binary: Path) -> str:
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    return " ".join((done.stdout + done.stderr).split())


def build_info(binary: Path) -> dict[str, Any]:
    """What bench/build_llama_server.sh wrote next to the binary, and the binary's --version."""
    info_path = binary.with_name(binary.name + ".build.json")
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return {**info, "version": version(binary)}
