"""The aiohttp data plane: routing, auth, limits, ingest, admin API and metrics."""

from .app import create_admin_app, create_app
from .state import Settings

__all__ = ["Settings", "create_admin_app", "create_app"]
