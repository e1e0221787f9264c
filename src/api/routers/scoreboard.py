"""Read endpoints of the scoreboard read model."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["scoreboard"])
