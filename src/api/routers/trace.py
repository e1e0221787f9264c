"""Read endpoints of the trace read model."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["trace"])
