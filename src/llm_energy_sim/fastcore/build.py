"""Compile tgicore.c once per machine and load it (ctypes): no build step at install.

The library is built on first use with the machine's C compiler ($CC, else Python's own
compiler, cc, gcc), at IEEE double semantics (no fast-math, no contraction into fused
multiply-adds: the loop must reproduce Python's floats bit for bit), into a cache directory
($LLM_ENERGY_SIM_CACHE, else $XDG_CACHE_HOME/llm_energy_sim, else ~/.cache/llm_energy_sim),
named by a hash of its source, layout and flags, so an edit rebuilds it and runs never see a
stale one. `library()` is None where no compiler works (the SimPy path runs then).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from llm_energy_sim.fastcore.layout import header

SOURCE = Path(__file__).with_name("tgicore.c")
FLAGS = ["-O2", "-std=c99", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math"]
CACHE_ENV = "LLM_ENERGY_SIM_CACHE"

_lib: ctypes.CDLL | None = None
_tried = False


def cache_dir() -> Path:
    """Where built libraries are kept."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llm_energy_sim"


def compilers() -> list[list[str]]:
    """Compiler commands to try, in order (each found on PATH)."""
    out: list[list[str]] = []
    for cmd in (os.environ.get("CC"), sysconfig.get_config_var("CC"), "cc", "gcc"):
        if not cmd:
            continue
        argv = shlex.split(cmd)
        if argv and shutil.which(argv[0]) and argv not in out:
            out.append(argv)
    return out


def source_text() -> str:
    """What is compiled: layout.py's #defines, then tgicore.c."""
    return header() + SOURCE.read_text()


def library_path(cc: list[str]) -> Path:
    key = "\0".join([source_text(), " ".join(cc + FLAGS), sys.platform, sys.version])
    return cache_dir() / f"tgicore-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def build(cc: list[str]) -> Path | None:
    """The library built with compiler cc (reused when already built); None on failure."""
    path = library_path(cc)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        src = Path(tmp) / "tgicore.c"
        src.write_text(source_text())
        out = Path(tmp) / path.name
        try:
            p = subprocess.run(
                [*cc, *FLAGS, "-o", str(out), str(src), "-lm"], capture_output=True, timeout=120
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if p.returncode != 0 or not out.is_file():
            return None
        os.replace(out, path)  # atomic: a concurrent run sees the whole library or none
    return path


def library() -> ctypes.CDLL | None:
    """The loaded loop (tgi_start, tgi_run, tgi_finish_open, the probes), or None where it cannot be
    built; tried once per process."""
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    for cc in compilers():
        try:
            path = build(cc)
        except OSError:  # e.g. a read-only cache directory
            path = None
        if path is None:
            continue
        lib = ctypes.CDLL(str(path))
        for name in ("tgi_start", "tgi_run"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_int
        lib.tgi_finish_open.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        lib.tgi_finish_open.restype = None
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        lib.tgi_probe_forward.argtypes = [ptr, i64, i64, i64, ptr]
        lib.tgi_probe_forward.restype = ctypes.c_int
        lib.tgi_probe_segment.argtypes = [ptr, i64, i64, i64, ctypes.c_double, ptr]
        lib.tgi_probe_segment.restype = None
        _lib = lib
        break
    return _lib
