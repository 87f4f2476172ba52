"""An operation that fails unexpectedly answers an OperationOutcome and logs the failure's type
only: an exception's message may quote what the App read (a local id, a name), and log lines
may leave the clinic (README, "Logs")."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from aiohttp import web

from app.aidbox.operations import _outcomes


async def _failing(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    raise KeyError("Patient/local-7 of Jane Roe")


async def test_an_unexpected_failure_answers_500_and_logs_its_type_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    resp = await _outcomes(_failing)({"id": "sync-status"}, {})
    assert resp.status == 500
    body = orjson.loads(resp.body)
    assert body["resourceType"] == "OperationOutcome"
    assert "KeyError" in body["issue"][0]["diagnostics"]
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "sync-status" in logged and "KeyError" in logged
    for quoted in ("local-7", "Jane Roe"):
        assert quoted not in logged and quoted not in body["issue"][0]["diagnostics"]
