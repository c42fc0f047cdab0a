"""Run one command so that it cannot outlive its supervisor or the test run.

    python3 supervise.py [--own-group] [--cleanup PATH]... -- COMMAND [ARG]...

The xtask starts the image registry (a Go binary we cannot change) and the `cargo test` of
`cargo xtask test` through this script. It

* starts COMMAND with PR_SET_PDEATHSIG=SIGTERM, so COMMAND gets SIGTERM if this supervisor dies,
  even by SIGKILL;
* with ``--own-group`` starts COMMAND in a new process group and signals that whole group (cargo
  and the test binaries it runs), otherwise COMMAND shares our group (the xtask put us in one of
  our own, which `cargo xtask testbed down` signals);
* forwards SIGTERM, SIGINT and SIGHUP to COMMAND, waits up to 10 s, then SIGKILLs it;
* watches the owner (see owner.py): when the run that started us is gone, COMMAND is stopped;
* removes every ``--cleanup`` path once COMMAND has exited (the registry's temporary storage);
* exits with COMMAND's exit code (128 + signal number when it was killed by a signal).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

import owner

_GRACE_SECONDS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--own-group", action="store_true", help="run COMMAND in its own process group")
    parser.add_argument("--cleanup", action="append", default=[], metavar="PATH", help="remove PATH at exit")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    child = subprocess.Popen(
        command,
        env={k: v for k, v in os.environ.items() if k != owner.OWNER_ENV},
        preexec_fn=owner.set_parent_death_signal,
        process_group=0 if args.own_group else None,
    )
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        if stopping:
            return
        stopping.append(signum)
        forward = signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM
        _signal_child(child, forward, args.own_group)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    owner.die_with_owner()

    code = _wait(child, args.own_group, stopping)
    for path in args.cleanup:
        shutil.rmtree(path, ignore_errors=True)
    return code


def _signal_child(child: subprocess.Popen[bytes], sig: int, own_group: bool) -> None:
    try:
        if own_group:
            os.killpg(child.pid, sig)
        else:
            child.send_signal(sig)
    except ProcessLookupError:
        pass


def _wait(child: subprocess.Popen[bytes], own_group: bool, stopping: list[int]) -> int:
    deadline: float | None = None
    while True:
        try:
            returncode = child.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        if stopping and deadline is None:
            deadline = time.monotonic() + _GRACE_SECONDS
        if deadline is not None and time.monotonic() > deadline:
            print("supervise: child did not stop in time; killing it", file=sys.stderr, flush=True)
            _signal_child(child, signal.SIGKILL, own_group)
            deadline = float("inf")
    if own_group:
        # Whatever the child left in its group (test binaries of a killed cargo) goes too.
        _signal_child(child, signal.SIGKILL, own_group)
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main())
