"""Anonymization throughput against a bare orjson round trip of the same resources.

    python bench/anonymize.py [--seconds 3]

Both sides start from the JSON bytes of the planted-PHI corpus (1,710 resources of eight
types, ``tests/phi``). The baseline is ``orjson.dumps(orjson.loads(raw))``; the measured path is
``orjson.dumps(anonymize(orjson.loads(raw), plan, key))`` with the default (safe-harbor) profile,
as the push pipeline runs it. Printed: resources/s of each, and the ratio of their costs
(target: <= 2x). Rounds of the sides alternate, and the best round of each is kept, to report
the machine, not its noise (another process on a shared machine slows both sides alike).

A second baseline is the floor of any walker written in Python: a bare recursive copy of the
same parsed resources, which decides nothing and builds the same kind of new dicts and lists
as the engine does (it never shares the input's containers, app/anonymize/engine.py). The
ratio of the anonymizer to that copy is what the engine's own work costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.anonymize import PseudonymKey, anonymize, compile_profile, load_profile
from tests.phi.corpus import generate_corpus


def _best_rates(sides: list[Callable[[], None]], count: int, seconds: float) -> list[float]:
    """Resources per second of each side's fastest round; the sides take turns for ``seconds``
    each."""
    best = [float("inf")] * len(sides)
    deadline = time.perf_counter() + seconds * len(sides)
    while time.perf_counter() < deadline:
        for index, work in enumerate(sides):
            start = time.perf_counter()
            work()
            best[index] = min(best[index], time.perf_counter() - start)
    return [count / elapsed for elapsed in best]


def _copy(node: dict) -> dict:
    """A new dict with new containers all the way down: what a walker building its output
    does at the least."""
    out = {}
    for name, value in node.items():
        kind = type(value)
        if kind is dict:
            out[name] = _copy(value)
        elif kind is list:
            out[name] = [_copy(item) if type(item) is dict else item for item in value]
        else:
            out[name] = value
    return out


def main() -> None:
    """Run the benchmark and print one summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measured side")
    args = parser.parse_args()

    raws = [orjson.dumps(resource) for resource in generate_corpus().resources]
    plan = compile_profile(load_profile("safe-harbor"))
    key = PseudonymKey(secret=b"benchmark-secret-0123456789-pad32", namespace="clinic-a")
    loads, dumps = orjson.loads, orjson.dumps

    def round_trip() -> None:
        for raw in raws:
            dumps(loads(raw))

    def anonymized() -> None:
        for raw in raws:
            dumps(anonymize(loads(raw), plan, key))

    parsed = [loads(raw) for raw in raws]

    def anonymize_only() -> None:
        for resource in parsed:
            anonymize(resource, plan, key)

    def copied() -> None:
        for resource in parsed:
            _copy(resource)

    bare, full, alone, floor = _best_rates(
        [round_trip, anonymized, anonymize_only, copied], len(raws), args.seconds
    )
    size = sum(map(len, raws)) / len(raws)
    print(f"corpus: {len(raws)} resources, {size:.0f} bytes each on average")
    print(f"orjson loads+dumps:            {bare:>10,.0f} resources/s")
    print(f"loads+anonymize+dumps:         {full:>10,.0f} resources/s")
    print(f"anonymize alone (parsed dict): {alone:>10,.0f} resources/s")
    print(f"bare Python copy (parsed dict):{floor:>10,.0f} resources/s")
    print(f"ratio (loads+anonymize+dumps) / (loads+dumps): {bare / full:.2f}x  (target <= 2x)")
    print(f"ratio anonymize alone / (loads+dumps):         {bare / alone:.2f}x")
    print(f"ratio bare Python copy / (loads+dumps):        {bare / floor:.2f}x  (the floor)")
    print(f"ratio anonymize alone / bare Python copy:      {floor / alone:.2f}x")


if __name__ == "__main__":
    main()
