"""The HTTP server and the in-process `Emulator` API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from . import apps, router
from .auth import authenticate, authorize
from .bundle import bundle_handler
from .faults import Faults
from .fhir_format import body_to_fhir, from_fhir
from .model import Req, Res
from .outcome import AidboxError, invalid, operation_outcome
from .runtime import Runtime
from .schema import ensure_schema
from .storage import init_connection
from .subscriptions import Deliveries
from .tables import Tables

log = logging.getLogger("aidbox_emulator")

_OPEN_PATHS = frozenset({"/health", "/live"})

# The largest request body Aidbox reads by default (reference/all-settings.md, web.max-body:
# BOX_WEB_MAX_BODY 20971520, "Maximum size of the request body in bytes").
MAX_BODY = 20_971_520


def _cut(request: web.Request) -> web.Response:
    """Close the connection without an answer (the response returned is never sent)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=503)


def _json(body: Any, status: int) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _to_response(res: Res, fhir: bool) -> web.Response:
    if res.raw is not None:
        resp = web.Response(body=res.raw, status=res.status, headers=res.headers)
        if res.content_type:
            resp.headers["Content-Type"] = res.content_type
        return resp
    if res.body is None:
        return web.Response(status=res.status, headers=res.headers)
    resp = _json(body_to_fhir(res.body) if fhir else res.body, res.status)
    resp.headers.update(res.headers)
    return resp


async def _read_body(request: web.Request) -> bytes:
    """The request body, refused above MAX_BODY with 413 and an OperationOutcome (what Aidbox
    answers is not documented: the status and code are the emulator's choice)."""
    too_large = AidboxError.of(
        413, "too-long", f"Request body is larger than the maximum of {MAX_BODY} bytes"
    )
    if (request.content_length or 0) > MAX_BODY:
        raise too_large
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:  # no Content-Length: counted as it arrives
        raise too_large from None


def _parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"Malformed JSON body: {exc}", status=400) from None


class Emulator:
    """An Aidbox emulator serving HTTP on top of a PostgreSQL database.

    >>> emu = Emulator(dsn, root_client_id="root", root_client_secret="secret")
    >>> base_url = await emu.start(host="127.0.0.1", port=0)

    FHIR types get their tables on first use unless `create_all_tables` (tables.py).
    """

    def __init__(
        self,
        dsn: str,
        root_client_id: str = "root",
        root_client_secret: str = "secret",
        *,
        pool_size: int = 10,
        create_all_tables: bool = False,
    ) -> None:
        self.dsn = dsn
        self.root_client_id = root_client_id
        self.root_client_secret = root_client_secret
        self.pool_size = pool_size
        self.create_all_tables = create_all_tables
        self.faults = Faults()
        self.url: str | None = None
        self._rt: Runtime | None = None
        self._runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Create the schema if needed, start serving; return the base URL."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await ensure_schema(conn)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(
            self.dsn, init=init_connection, min_size=1, max_size=self.pool_size
        )
        http = aiohttp.ClientSession()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        self._rt = Runtime(
            pool=pool,
            faults=self.faults,
            http=http,
            deliveries=Deliveries(pool, http),
            tables=Tables(self.dsn),
            base_url=self.url,
            root_client_id=self.root_client_id,
            root_client_secret=self.root_client_secret,
        )
        if self.create_all_tables:
            await self._rt.tables.ensure_all()
        return self.url

    async def stop(self) -> None:
        """Stop serving and release the database pool."""
        self.faults.clear()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._rt is not None:
            await self._rt.deliveries.close()
            await self._rt.http.close()
            await self._rt.pool.close()
        self._rt = self._runner = None

    async def deliveries_idle(self) -> None:
        """Wait until no subscription delivery is pending."""
        if self._rt is not None:
            await self._rt.deliveries.idle()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._rt is not None, "emulator not started"
        held = self._rt.faults.claim_request_hold(request.method, request.path)
        if held is not None and not held.answer:
            # The request arrived whole (aiohttp keeps the body read); one too large is
            # answered as such below.
            with contextlib.suppress(AidboxError):
                await _read_body(request)
            await held._hold()  # the caller may give up meanwhile; the request runs anyway
        response = await self._answer(request)
        if held is not None:
            held._answer(response.status)
            if held.answer:
                await held._hold()  # done; its answer waits
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except AidboxError as err:
            return _json(err.outcome, err.status)
        except Exception:
            log.exception("unexpected error on %s %s", request.method, request.path)
            return _json(operation_outcome("exception", "Internal server error"), 500)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        rt = self._rt
        assert rt is not None, "emulator not started"
        fault = rt.faults.random_fault(request.method, request.path)
        if fault == "drop":
            return _cut(request)
        if fault == "error":
            raise AidboxError.of(503, "transient", "Injected fault: service unavailable")
        if fault == "late":
            # arrived whole; it runs later, whether its caller waits or not
            await _read_body(request)
            await asyncio.sleep(rt.faults.late_by)
        if fault == "lose":
            try:
                await self._carry_out(request)
            except Exception:  # refused or failed: whatever it was, the caller never hears
                log.debug("lost answer of %s %s: it failed", request.method, request.path)
            return _cut(request)
        return await self._carry_out(request)

    async def _carry_out(self, request: web.Request) -> web.StreamResponse:
        rt = self._rt
        assert rt is not None, "emulator not started"
        if request.path in _OPEN_PATHS:
            return _json({"status": "OK"}, 200)
        fhir = request.path == "/fhir" or request.path.startswith("/fhir/")
        body = _parse_body(await _read_body(request))
        req = Req(
            method=request.method.upper(),
            path=request.path[len("/fhir") :] if fhir else request.path,
            query=request.query,
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            fhir=fhir,
            query_string=request.query_string,
            scheme=request.scheme,
            remote_addr=request.remote,
            wire_body=body,
        )
        async with rt.pool.acquire() as conn:
            caller = await authenticate(
                conn,
                req.headers,
                rt.root_client_id,
                rt.root_client_secret,
                rt.verified_credentials,
            )
            # App operations take precedence over built-in routes (apps are served at `/`).
            op = None if fhir else await apps.match_operation(conn, req.method, req.segments)
            if op is not None:
                await authorize(conn, caller, op.operation_id, req, op.route_params)
            else:
                route = await router.match(rt, conn, req, bundle_handler)
                await authorize(conn, caller, route.operation_id, req, route.params)
        if op is not None:
            return _to_response(await apps.forward(rt, op, req, caller.client), fhir=False)
        if fhir and route.self_handler is None and isinstance(req.body, dict):
            req = req.with_body(from_fhir(req.body))
        return _to_response(await router.run(rt, req, route, caller), fhir)
