"""Watching the sync: each clinic's `$sync-status`, drawn as a table of streams with counts."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from app.aidbox.client import AidboxClient

POLL = 0.25  # seconds between looks at $sync-status

COLUMNS = ("read", "written", "deleted", "quarantined")


async def statuses(clinics: dict[str, AidboxClient]) -> dict[str, dict[str, Any]]:
    """Each clinic's `$sync-status` (through its Aidbox, as an operator would call it)."""
    answers = await asyncio.gather(*(c.call("GET", "/$sync-status") for c in clinics.values()))
    return {name: resp.body for name, resp in zip(clinics, answers, strict=True)}


def stream_rows(status: dict[str, dict[str, Any]], direction: str) -> list[list[str]]:
    """One row per stream of a direction: clinic, stream, counters, lag, state."""
    rows = []
    for clinic, body in status.items():
        for stream in body["streams"]:
            if stream["direction"] != direction or not stream["enabled"]:
                continue
            lag = stream.get("lag") or {}
            state = stream.get("error") or stream["status"]
            if stream.get("lastError"):
                state = f"{state}: {stream['lastError'].get('message', '')}"[:60]
            rows.append(
                [
                    clinic,
                    stream["stream"],
                    *(str(stream["counters"][c]) for c in COLUMNS),
                    str(lag.get("versions", "?")),
                    state,
                ]
            )
    return rows


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Rows aligned under a header (numbers right-aligned)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            c.rjust(w) if c.isdigit() else c.ljust(w) for c, w in zip(row, widths, strict=True)
        ]
        return "  ".join(cells).rstrip()

    return [line(header), *(line(r) for r in rows)]


HEADER = ["clinic", "stream", *COLUMNS, "lag", "status"]


def caught_up(status: dict[str, dict[str, Any]], direction: str) -> bool:
    """Every enabled stream of the direction has reached its source's head, without error."""
    streams = [
        s
        for body in status.values()
        for s in body["streams"]
        if s["direction"] == direction and s["enabled"]
    ]
    return bool(streams) and all(
        s.get("head") is not None
        and s["lag"]["versions"] == 0
        and s["status"] != "failed"
        and not s.get("error")
        for s in streams
    )


class Progress:
    """Draws the streams of a direction until they have caught up: redrawn in place on a
    terminal, a line per clinic every second otherwise (a CI log)."""

    def __init__(self, clinics: dict[str, AidboxClient]) -> None:
        self.clinics = clinics
        self.tty = sys.stdout.isatty()

    async def until_caught_up(self, direction: str, within: float) -> dict[str, Any]:
        """Wait until every stream of `direction` in every clinic has caught up; the last
        statuses. Raises TimeoutError, with the table, if they have not in `within` s."""
        started = time.monotonic()
        drawn = 0
        last_line = 0.0
        while True:
            status = await statuses(self.clinics)
            done = caught_up(status, direction)
            lines = table(HEADER, stream_rows(status, direction))
            elapsed = time.monotonic() - started
            if self.tty:
                sys.stdout.write(f"\x1b[{drawn}F\x1b[J" if drawn else "")
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
                drawn = len(lines)
            elif done or elapsed - last_line >= 1:
                last_line = elapsed
                print(f"   [{elapsed:4.1f} s] {self._summary(status, direction)}", flush=True)
            if done:  # the report shows the final table
                return status
            if elapsed > within:
                shown = "\n".join(lines)
                raise TimeoutError(f"{direction} did not catch up in {within:.0f} s:\n{shown}")
            await asyncio.sleep(POLL)

    @staticmethod
    def _summary(status: dict[str, dict[str, Any]], direction: str) -> str:
        parts = []
        for clinic, body in status.items():
            streams = [s for s in body["streams"] if s["direction"] == direction]
            written = sum(s["counters"]["written"] + s["counters"]["deleted"] for s in streams)
            behind = sum((s.get("lag") or {}).get("versions", 0) for s in streams)
            parts.append(f"{clinic}: {written} written, {behind} versions behind")
        return "; ".join(parts)
