"""Read endpoints of the responsibility matrix read model."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["responsibility-matrix"])
