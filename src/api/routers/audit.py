"""Read endpoints of the audit index read model."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["audit-index"])
