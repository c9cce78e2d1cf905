"""Kill `sim` with SIGKILL at a chosen point of its filesystem work, deterministically.

`python killpoints.py ARGS` runs `sim ARGS` with an audit hook (sys.addaudithook) that
numbers every filesystem change under $KILL_ROOT: a file opened for writing (or for the
fsync of `r+`), a rename or replace, a removal, a directory made or removed, an rmtree.
With KILL_AT=K the process SIGKILLs itself:

* KILL_MODE=before (the default): at event K, before the change happens;
* KILL_MODE=during: at event K, an open for writing, once the file holds its first bytes
  (a watcher thread polls its size), or at the next event (or at exit) if it never
  grows: the kill lands while the file is being written, or just after.

With KILL_AT=0 nothing is killed and each event is appended to $KILL_LOG as one line
("NUMBER EVENT PATH MODE", the mode for an open only), so
a test learns how many kill points a command has and runs one kill at each. No timing is
asserted anywhere: whatever moment a kill lands, the same checks must hold.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

#: the audit events that change the filesystem
CHANGES = {
    "open",
    "os.rename",
    "os.remove",
    "os.rmdir",
    "os.mkdir",
    "os.truncate",
    "shutil.rmtree",
    "shutil.copytree",
    "shutil.copyfile",
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _writes(args: tuple) -> bool:
    """Whether an `open` audit event (path, mode, flags) opens for writing."""
    mode = args[1] if len(args) > 1 else "r"
    flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return bool(flags & WRITE_FLAGS)


class Hook:
    """The audit hook: counts the changes under `root`, kills at number `at`."""

    def __init__(self, root: str, at: int, mode: str, log: str | None) -> None:
        self.root, self.at, self.mode, self.log = root, at, mode, log
        self.n = 0
        self.in_rmtree = False  # rmtree's own removals name paths relative to a dir fd
        self.kill_next = False

    def _path(self, event: str, args: tuple) -> str | None:
        """The absolute path an event changes when it lies under root, else None."""
        if not args or isinstance(args[0], int) or args[0] is None:
            return None
        raw = os.fsdecode(args[0]) if isinstance(args[0], str | bytes) else str(args[0])
        relative_to_fd = len(args) > 1 and isinstance(args[-1], int) and args[-1] not in (-1,)
        if event in ("os.remove", "os.rmdir") and relative_to_fd and not os.path.isabs(raw):
            return raw if self.in_rmtree else None
        path = os.path.abspath(raw)
        return path if path == self.root or path.startswith(self.root + os.sep) else None

    def __call__(self, event: str, args: tuple) -> None:
        if event not in CHANGES:
            return
        path = self._path(event, args)
        if path is None or (event == "open" and not _writes(args)):
            return
        if event == "shutil.rmtree":
            self.in_rmtree = True
        self.n += 1
        if self.kill_next:
            _kill()
        if self.at == 0:
            if self.log:
                mode = args[1] if event == "open" and len(args) > 1 else ""
                with open(self.log, "a") as f:  # outside root: not itself counted
                    f.write(f"{self.n} {event} {path} {mode}\n")
            return
        if self.n != self.at:
            return
        if self.mode == "during" and event == "open":
            self.kill_next = True
            atexit.register(_kill)  # the file stayed empty and nothing followed it
            threading.Thread(target=_kill_once_written, args=(path,), daemon=True).start()
            return
        _kill()


def _kill_once_written(path: str) -> None:
    """SIGKILL this process as soon as `path` holds a byte (polled)."""
    import time

    while True:
        try:
            if os.stat(path).st_size > 0:
                _kill()
        except FileNotFoundError:
            pass
        time.sleep(0.0002)


def run(
    args: list, cwd: Path, root: Path, at: int = 0, mode: str = "before", log: Path | None = None
) -> subprocess.CompletedProcess:
    """`sim ARGS` in a subprocess from `cwd`, killed at change number `at` under `root`
    (0: not killed; each change logged to `log`)."""
    import llm_energy_sim

    src = Path(llm_energy_sim.__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(src), str(Path(__file__).resolve().parent), env.get("PYTHONPATH", "")]
    )
    env.update(KILL_ROOT=str(Path(root).resolve()), KILL_AT=str(at), KILL_MODE=mode)
    if log is not None:
        env["KILL_LOG"] = str(log)
    return subprocess.run(
        [sys.executable, __file__, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def changes(args: list, cwd: Path, root: Path, log: Path) -> list[str]:
    """The numbered changes under `root` of an uninterrupted `sim ARGS` (which must succeed)."""
    log.unlink(missing_ok=True)
    r = run(args, cwd, root, 0, log=log)
    assert r.returncode == 0, r.stderr
    return log.read_text().splitlines() if log.exists() else []


if __name__ == "__main__":
    sys.addaudithook(
        Hook(
            os.environ["KILL_ROOT"],
            int(os.environ.get("KILL_AT", "0")),
            os.environ.get("KILL_MODE", "before"),
            os.environ.get("KILL_LOG"),
        )
    )
    from llm_energy_sim.cli.main import main

    main(sys.argv[1:], prog_name="sim")
