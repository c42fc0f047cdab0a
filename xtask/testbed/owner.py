"""Die with the owner: how a test-bed process ends when the run that started it ends.

`cargo xtask test` starts every test-bed process as its direct child and passes its own pid in
the environment variable ``DEPLOYER_TESTBED_OWNER_PID``. Each process then ends as soon as that
owner is gone, however it went (normal exit, Ctrl-C, SIGKILL):

1. ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` (Linux, through ctypes): the kernel sends us SIGTERM the
   moment the thread that forked us exits. Immediate, but Linux-only.
2. A watchdog thread polling ``os.getppid()`` every 200 ms: once the owner has exited we are
   re-parented (to init or a sub-reaper), so our parent pid is no longer the owner's. This is
   immune to pid reuse and also works where prctl does not.

Both paths end in the process's own SIGTERM handling, so cleanup code runs once, in one place.
Without the variable (`cargo xtask testbed up`, a bed meant to outlive the command) nothing is
watched and the process lives until `cargo xtask testbed down` signals its process group.

Only the standard library is used: this module also runs under a plain ``python3``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Callable

OWNER_ENV = "DEPLOYER_TESTBED_OWNER_PID"
_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 0.2


def owner_pid() -> int | None:
    """The owner's pid from the environment, or None for a free-standing bed."""
    raw = os.environ.get(OWNER_ENV, "").strip()
    return int(raw) if raw else None


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Asks the kernel to send ``sig`` to this process when its parent thread exits.

    Also usable as a ``preexec_fn`` (between fork and exec) so that a child we start dies with
    us: the setting survives ``execve``. Returns False where prctl is not available.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_owner(on_owner_gone: Callable[[], None] | None = None) -> int | None:
    """Arranges for this process to receive SIGTERM when the owner process exits.

    ``on_owner_gone`` runs in the watchdog thread before the signal is sent (for logging). The
    owner must be our parent: `cargo xtask test` spawns test-bed processes directly. Returns the
    owner's pid, or None when no owner was given.
    """
    owner = owner_pid()
    if owner is None:
        return None
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != owner:
        # The owner died before we could arm anything (or we were not started by it).
        _owner_gone(owner, on_owner_gone)
        return owner

    def watch() -> None:
        while os.getppid() == owner:
            time.sleep(_POLL_SECONDS)
        _owner_gone(owner, on_owner_gone)

    threading.Thread(target=watch, name="owner-watchdog", daemon=True).start()
    return owner


def _owner_gone(owner: int, callback: Callable[[], None] | None) -> None:
    print(f"testbed: owner process {owner} is gone; shutting down", file=sys.stderr, flush=True)
    if callback is not None:
        callback()
    os.kill(os.getpid(), signal.SIGTERM)
