"""Pool workers that die with their parent: `die_with_parent` is the initializer of every
local worker process of `sim sweep` / `sim plan`, so a SIGKILL of the main process (which
runs no clean-up) still takes its workers with it.

On Linux the kernel does it: prctl(PR_SET_PDEATHSIG, SIGKILL) through ctypes. Everywhere
(Linux included, as a second line) a daemon thread polls os.getppid() and exits the worker
when the parent is gone (the worker is re-parented, so its parent id changes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
#: how often the watchdog looks at the parent (s)
POLL_S = 0.5


def _set_pdeathsig() -> bool:
    """Ask the Linux kernel to SIGKILL this process when its parent dies; False elsewhere
    or when prctl is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    stop = threading.Event()
    while not stop.wait(POLL_S):
        if os.getppid() != parent:
            os._exit(1)  # the parent is gone: no clean-up can be owed to it


def die_with_parent(parent: int | None = None) -> None:
    """Make this (worker) process end when `parent` (default: its current parent) ends."""
    parent = os.getppid() if parent is None else parent
    _set_pdeathsig()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="die-with-parent").start()
