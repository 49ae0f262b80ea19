"""Keep one CPU core busy for a bounded time, alone or around a command, to test on a loaded machine.

The suite has to pass while something else competes for the CPU (a CI runner shared with other jobs, a
laptop compiling in the background). This reproduces that: one child process spins on a core, never
for longer than ``--seconds`` (default 1800), and stops by itself when the time is up, when the wrapped
command ends, or when this process is interrupted. ``--cores 2`` spins on two cores, to reproduce a
failure seen on a busier machine more often.

    python dev/busy_core.py --seconds 60            # one busy core for a minute
    python dev/busy_core.py -- bash .ci/run          # CI with one core busy throughout
    python dev/busy_core.py -- python -m pytest -q   # the tests, likewise

With a command, the exit status is the command's; the spinner is stopped before this process exits.
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import subprocess
import sys
import time


def spin(seconds: float) -> None:
    """Burn one core until ``seconds`` have passed (checked every few million iterations)."""
    deadline = time.monotonic() + seconds
    counter = 0
    while time.monotonic() < deadline:
        for _ in range(1_000_000):
            counter += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1800.0, help="upper bound on the busy time")
    parser.add_argument("--cores", type=int, default=1, help="how many cores to keep busy (default 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="command to run while a core is busy")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    context = multiprocessing.get_context("spawn")
    spinners = [context.Process(target=spin, args=(args.seconds,), daemon=True) for _ in range(args.cores)]
    for spinner in spinners:
        spinner.start()
    pids = " ".join(str(s.pid) for s in spinners)
    print(
        f"busy_core: pid {pids} keep {args.cores} core(s) busy for at most {args.seconds:g}s", file=sys.stderr
    )
    try:
        if not command:
            for spinner in spinners:
                spinner.join()
            return 0
        child = subprocess.Popen(command)  # noqa: S603 - the command line it was given
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            return child.wait()
    finally:
        for spinner in spinners:
            if spinner.is_alive():
                spinner.terminate()
                spinner.join(5)


if __name__ == "__main__":
    # A SIGTERM to this process stops the spinner too (through the finally above).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    sys.exit(main())
