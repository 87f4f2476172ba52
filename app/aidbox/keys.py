"""Typed keys of what the composition root stores on the aiohttp application."""

from aiohttp import web

from app.aidbox.client import AidboxClient
from app.settings import AppSettings
from app.sync.runner import SyncService
from app.sync.watermark import Watermark

settings_key = web.AppKey("aidbox_sync.settings", AppSettings)
own_aidbox_key = web.AppKey("aidbox_sync.own_aidbox", AidboxClient)
sync_service_key = web.AppKey("aidbox_sync.sync_service", SyncService)
# Global role: the settled bound of headquarters' own changes, one per process, for pull.
watermark_key = web.AppKey("aidbox_sync.watermark", Watermark)
