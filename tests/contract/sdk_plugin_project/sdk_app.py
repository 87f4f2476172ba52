"""A minimal aidbox-python-sdk App, configured from the environment (APP_* variables)."""

from __future__ import annotations

from aidbox_python_sdk.main import create_app as create_sdk_app
from aidbox_python_sdk.sdk import SDK
from aidbox_python_sdk.settings import Settings
from aiohttp import web

sdk = SDK(Settings(), seeds={"Organization": {"sdk-seed-org": {"name": "Seed"}}})


@sdk.subscription("Patient")
async def patient_changed(event, request):
    """Subscription the plugin's `was_subscription_triggered` waits for."""
    return None


@sdk.operation(["GET"], ["$sdk-ping"], public=True)
async def ping(operation, request):
    """A public operation."""
    return web.json_response({"pong": request["route-params"]})


def create_app() -> web.Application:
    """The factory named by the `aidbox_create_app` ini option."""
    return create_sdk_app(sdk)
