"""`python -m demo [--once]`: headquarters and two clinics, synced both ways, then checked.

Without `--once` it then keeps everything running and shows each change arriving at
headquarters, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from contextlib import AsyncExitStack

from demo.fleet import Ports, open_fleet
from demo.live import follow_headquarters, instructions
from demo.progress import Progress
from demo.report import report
from demo.scenario import Demo, pull_phase, push_phase, start


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument(
        "--once",
        action="store_true",
        help="run the scripted part, exit 0 only if every check holds",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("DEMO_PORT", "8080")),
        help="the global Aidbox's port; the clinics take the next ones, the Apps ten above "
        "(default 8080; with --once, free ports)",
    )
    return parser.parse_args()


async def _scripted(demo: Demo) -> bool:
    progress = Progress(demo.clinics)
    await pull_phase(demo, progress)
    await push_phase(demo, progress)
    lines, checks = await report(demo)
    print("\n".join(lines), flush=True)
    return all(c.ok for c in checks)


async def _main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    ports = Ports.anywhere() if args.once else Ports.fixed(args.port)
    # Ctrl-C (or SIGTERM, or the terminal closing) cancels the run wherever it is; the stack
    # then stops every process. A second signal while it stops them is ignored.
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    stopping: list[bool] = []

    def stop() -> None:
        if not stopping:
            stopping.append(True)
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop)
    async with AsyncExitStack() as stack:
        fleet = await open_fleet(stack, ports)
        demo = await start(stack, fleet, print)
        ok = await _scripted(demo)
        print(f"\nScripted part: {time.monotonic() - started:.1f} s; logs in {fleet.logs}")
        print("All checks passed." if ok else "SOME CHECKS FAILED.", flush=True)
        if args.once:
            return 0 if ok else 1
        print("\n".join(instructions(demo)), flush=True)
        try:
            await follow_headquarters(demo)
        except asyncio.CancelledError:
            print("\nStopping every process...", flush=True)
    return 0


def main() -> None:
    """Entry point of `python -m demo`."""
    try:
        sys.exit(asyncio.run(_main(_args())))
    except asyncio.CancelledError:  # stopped during the scripted part
        sys.exit(130)


if __name__ == "__main__":
    main()
