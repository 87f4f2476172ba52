"""Composition root: settings → SDK → aiohttp app → background runner."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import sys
from collections.abc import AsyncIterator

from aidbox_python_sdk.main import create_app
from aidbox_python_sdk.sdk import SDK
from aiohttp import web

from app.aidbox.bootstrap import (
    define_custom_resources,
    install_policies,
    install_profiles,
    push_types_to_watch,
)
from app.aidbox.client import AidboxClient, RetryPolicy
from app.aidbox.keys import own_aidbox_key, settings_key, sync_service_key, watermark_key
from app.aidbox.manifest import Manifest, load_manifest
from app.aidbox.operations import register_operations
from app.aidbox.subscriptions import Subscriptions
from app.anonymize import PseudonymKey
from app.settings import AppSettings, Role, SettingsError, load_settings
from app.sync.runner import SyncService
from app.sync.stream import Limits
from app.sync.watermark import Watermark

log = logging.getLogger("aidbox_sync")


def _retry_policy(settings: AppSettings) -> RetryPolicy:
    return RetryPolicy(settings.retry_attempts, settings.retry_base_delay, settings.retry_max_delay)


def _sync_service(
    settings: AppSettings, own: AidboxClient, subscriptions: Subscriptions
) -> SyncService:
    retry = _retry_policy(settings)
    assert settings.global_url and settings.global_client_id  # checked by AppSettings
    assert settings.global_client_secret and settings.pseudonym_key and settings.instance_id
    return SyncService(
        local=own,
        global_=AidboxClient(
            str(settings.global_url),
            settings.global_client_id,
            settings.global_client_secret.get_secret_value(),
            timeout=settings.http_timeout,
            retry=retry,
        ),
        key=PseudonymKey(
            secret=settings.pseudonym_key.get_secret_value().encode(),
            namespace=settings.instance_id,
        ),
        limits=Limits(
            settings.batch_max_entries,
            settings.batch_max_bytes,
            in_flight=settings.in_flight,
            breaker_ratio=settings.breaker_ratio,
            breaker_min_entries=settings.breaker_min_entries,
        ),
        poll_interval=settings.poll_interval,
        concurrency=settings.concurrency,
        settle_timeout=settings.settle_timeout,
        # Stable across restarts of the same service (same host, same URL), so a restarted
        # service resumes its own streams at once; a second service gets another name.
        owner=f"{socket.gethostname()} {settings.app_url}",
        on_push_types=subscriptions.follow,
    )


async def _metrics(request: web.Request) -> web.Response:
    metrics = request.app[sync_service_key].metrics
    return web.Response(body=metrics.render(), headers={"Content-Type": metrics.content_type})


def build_app(settings: AppSettings) -> web.Application:
    """The aiohttp application of one aidbox-sync service (not started)."""
    manifest: Manifest = load_manifest(settings.role)
    sdk = SDK(settings.sdk_settings(), resources=manifest.resources, seeds=manifest.seeds)
    register_operations(sdk, settings.role)
    app = create_app(sdk)
    own = AidboxClient(
        str(settings.app_init_url),
        settings.app_init_client_id,
        settings.app_init_client_secret.get_secret_value(),
        timeout=settings.http_timeout,
        retry=_retry_policy(settings),
        # A clinic's own Aidbox: its paths carry local ids (docs/push.md, "Logs").
        log_ids=settings.role is Role.GLOBAL or settings.log_local_ids,
    )
    app[settings_key] = settings
    app[own_aidbox_key] = own
    if settings.role is Role.GLOBAL:
        # One per process: what it proved settled serves every clinic's next pull.
        app[watermark_key] = Watermark(own)
    subscriptions = Subscriptions(sdk, own)

    async def prepare_aidbox(app: web.Application) -> AsyncIterator[None]:
        # Runs before the SDK's own start-up context, which registers the App and its seeds.
        await define_custom_resources(own, manifest)
        await install_profiles(own, manifest)
        if settings.role is Role.LOCAL:
            subscriptions.subscribe(await push_types_to_watch(own, manifest))
        yield
        await own.close()

    app.cleanup_ctx.insert(0, prepare_aidbox)

    async def install_access_policies(app: web.Application) -> AsyncIterator[None]:
        # After the SDK's start-up context: the App and its operations are registered.
        await install_policies(own, manifest)
        yield

    app.cleanup_ctx.append(install_access_policies)

    if settings.role is Role.LOCAL:
        service = _sync_service(settings, own, subscriptions)
        app[sync_service_key] = service
        app.router.add_get("/metrics", _metrics)

        async def background_runner(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(service.run_forever()) if settings.runner_enabled else None
            yield
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await service.global_.close()

        app.cleanup_ctx.append(background_runner)
    if settings.gc_freeze:
        app.on_startup.append(_freeze_startup_objects)
    return app


async def _freeze_startup_objects(app: web.Application) -> None:
    """Keep what start-up built out of the garbage collector's scans.

    Start-up leaves about 100,000 long-lived objects (SDK, pydantic schemas, aiohttp). Each
    full collection walks all of them: a pause of about 50 ms of the event loop, in the
    middle of a push, while the global waits for the next transaction (bench/push.py). Nearly
    all of them live as long as the process, so they are frozen once, after a collection
    (the few that die later are freed by reference counting, unless they form a cycle).
    Registered last, so the SDK and the push service are built by then.
    """
    gc.collect()
    gc.freeze()


def main() -> None:
    """Console entry point: `aidbox-sync` (settings from the environment)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"aidbox-sync: {exc}", file=sys.stderr)
        sys.exit(2)
    web.run_app(build_app(settings), host=settings.aio_host, port=settings.aio_port)


if __name__ == "__main__":
    main()
