"""The App as a real OS process, for tests that kill it (SIGKILL) mid-work."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Callable

from tests.support.apps import app_env


async def port_open(port: int) -> None:
    """Return once something listens on the loopback `port` (a process just started)."""
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def app_process(
    local_url: str,
    global_url: str,
    port: int,
    secret: str,
    logs: list[bytes] | None = None,
    *,
    role: str = "local",
    cpus: frozenset[int] | None = None,
    **extra: str,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The App as its own OS process on `port` (registered with `local_url`, in `role`, on
    `cpus` if given); yields once it has registered. Its runner is off unless ``extra`` turns
    it on; what it logged is appended to ``logs``."""
    env = {
        **os.environ,
        **app_env(
            local_url,
            port,
            role=role,
            global_url=global_url,
            **{"SYNC_RUNNER_ENABLED": "false", "SYNC_GLOBAL_CLIENT_SECRET": secret, **extra},
        ),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.main",
        env=env,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    assert proc.stderr is not None
    seen = []
    while b"successfully registered" not in (line := await proc.stderr.readline()):
        assert line, "the App exited before registering"
        seen.append(line)
    # The port is open right after registration (aiohttp starts the site next); wait for it.
    await port_open(port)
    drain = asyncio.create_task(proc.stderr.read())
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        rest = await drain
        if logs is not None:
            logs.append(b"".join(seen) + rest)


def seeded(default: int) -> random.Random:
    """The random source of a randomized end-to-end test: its fixed seed, so that CI replays
    the same run, unless AIDBOX_SYNC_SEED asks for another (to explore more runs locally)."""
    return random.Random(int(os.environ.get("AIDBOX_SYNC_SEED", default)))


def fork(rng: random.Random) -> random.Random:
    """A random source of its own for a task that runs beside the test (a writer): drawn from
    `rng` once, so that how many draws the task makes, which depends on timing, never moves
    what the test draws next (lifetimes, settings, fault seeds): a seed replays them all."""
    return random.Random(rng.getrandbits(64))


def random_life(rng: random.Random) -> dict[str, str]:
    """One life's batches and transactions in flight (``kill_at_random``'s ``settings``): small
    batches keep several of a stream's transactions in flight when it dies, and each life may
    keep a different number of them."""
    return {
        "SYNC_BATCH_MAX_ENTRIES": str(rng.choice([2, 3, 200])),
        "SYNC_IN_FLIGHT": str(rng.choice([1, 2, 4])),
    }


async def kill_at_random(
    local_url: str,
    global_url: str,
    port: int,
    secret: str,
    *,
    rng: random.Random,
    kills: int,
    lifetime: tuple[float, float],
    logs: list[bytes] | None = None,
    while_alive: Callable[[], object] | None = None,
    after_death: Callable[[], object] | None = None,
    settings: Callable[[], dict[str, str]] | None = None,
) -> None:
    """Start the App with its runner on `kills` times, SIGKILL it after a random lifetime
    wherever it is. `while_alive` runs once it has registered (to inject faults then),
    `after_death` once it is dead (awaited if it returns an awaitable: a check of what the life
    left, before the next one starts); `settings` gives each life's own environment (a batch
    size, transactions in flight: a run resumes what a run set differently left)."""
    for _ in range(kills):
        async with app_process(
            local_url,
            global_url,
            port,
            secret,
            logs,
            SYNC_RUNNER_ENABLED="true",
            SYNC_POLL_INTERVAL="0.1",
            **(settings() if settings is not None else {}),
        ) as proc:
            if while_alive is not None:
                while_alive()
            await asyncio.sleep(rng.uniform(*lifetime))
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
        if after_death is not None:
            done = after_death()
            if inspect.isawaitable(done):
                await done
