"""Read endpoints of the supervision read model."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["supervision"])
