"""A headquarters that costs almost nothing: answers what the push asks of the global Aidbox
at once, stores nothing. Run as its own process by bench/ceiling.py.

- `GET /AidboxInstance/<id>`: the clinic, registered and active (app/sync/instance.py);
- `GET /SyncFence/<id>`: 404, no token yet (app/sync/fence.py opens from the last known);
- `POST /` with a transaction: a `transaction-response` with one `response.status` per entry,
  201 for a create, 200 for an update, 204 for a delete (api/batch-transaction.md);
- anything else: 404 OperationOutcome.

With DELAY_MS, each transaction is answered that many milliseconds late, as over a wide-area
link to a distant headquarters: the time is the network's, not the server's, so several
transactions wait side by side.

Usage: python bench/zero_global.py PORT [DELAY_MS]
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from aiohttp import web

_STATUS = {"POST": "201", "PUT": "200", "DELETE": "204"}
_JSON = "application/json"


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON)


async def _instance(request: web.Request) -> web.Response:
    iid = request.match_info["id"]
    return _json({"resourceType": "AidboxInstance", "id": iid, "status": "active"})


async def _transaction(request: web.Request) -> web.Response:
    bundle = orjson.loads(await request.read())
    await asyncio.sleep(request.app[_DELAY])
    entries = [
        {"response": {"status": _STATUS.get(e["request"]["method"], "200")}}
        for e in bundle.get("entry") or []
    ]
    return _json({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})


async def _not_found(request: web.Request) -> web.Response:
    issue = {"severity": "error", "code": "not-found", "diagnostics": "not found"}
    return _json({"resourceType": "OperationOutcome", "issue": [issue]}, status=404)


_DELAY = web.AppKey("delay", float)


def app(delay: float = 0.0) -> web.Application:
    """The server's routes; each transaction answered `delay` seconds late."""
    application = web.Application(client_max_size=64 * 1024 * 1024)
    application[_DELAY] = delay
    application.router.add_get("/AidboxInstance/{id}", _instance)
    application.router.add_post("/", _transaction)
    application.router.add_route("*", "/{tail:.*}", _not_found)
    return application


if __name__ == "__main__":
    delay_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    web.run_app(
        app(delay_ms / 1000), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None
    )
