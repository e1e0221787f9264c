"""The HTTP API (FastAPI): thin routers over the command service."""

from closedloop.api.app import create_app

__all__ = ["create_app"]
