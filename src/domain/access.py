"""Access tokens: who may act, as which role, for which unit. Issuing and revoking are events.

Only a token's SHA-256 digest is stored. The aggregate id is derived from that digest, so a
presented token is found with one read of the event store, with no index to keep in step.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from enum import Enum
from uuid import UUID

from closedloop.domain.base import LoopAggregate, require_reason, require_text
from closedloop.domain.errors import RuleViolation
from closedloop.domain.units import Unit

TOKEN_PREFIX = "clt_"
_TOKEN_NAMESPACE = uuid.UUID("6f1c2d4e-8a3b-4c5d-9e7f-0a1b2c3d4e5f")


class Role(Enum):
    ADMIN = "admin"
    LEADER = "leader"
    MEMBER = "member"
    AUDITOR = "auditor"
    INSPECTOR = "inspector"


UNIT_SCOPED_ROLES = frozenset({Role.LEADER, Role.MEMBER})


class UnitScopedRolesNameAUnit(RuleViolation):
    """Leader and member tokens act for a unit and must name it; other roles name none."""


class TokenRevokedOnlyOnce(RuleViolation):
    """A revoked token cannot be revoked again."""


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_id_for(secret: str) -> UUID:
    return uuid.uuid5(_TOKEN_NAMESPACE, token_digest(secret))


class AccessToken(LoopAggregate):
    class TokenIssued(LoopAggregate.Created):
        name: str
        role: Role
        unit_id: UUID | None
        token_digest: str

    class TokenRevoked(LoopAggregate.Event):
        def apply(self, token: AccessToken) -> None:
            token.revoked = True

    @staticmethod
    def create_id(token_digest: str) -> UUID:
        return uuid.uuid5(_TOKEN_NAMESPACE, token_digest)

    def __init__(self, name: str, role: Role, unit_id: UUID | None, token_digest: str) -> None:
        self.name = name
        self.role = role
        self.unit_id = unit_id
        self.token_digest = token_digest
        self.revoked = False

    @classmethod
    def issue(cls, *, secret: str, name: str, role: Role, unit: Unit | None) -> AccessToken:
        if (role in UNIT_SCOPED_ROLES) != (unit is not None):
            raise UnitScopedRolesNameAUnit(role=role.value, unit=unit.id if unit else None)
        return cls(
            name=require_text(name, field_name="name", max_length=100),
            role=role,
            unit_id=unit.id if unit else None,
            token_digest=token_digest(secret),
        )

    @property
    def principal(self) -> str:
        """The actor recorded on events done with this token."""
        return f"token:{self.name}"

    def revoke(self, *, reason: str | None) -> None:
        if self.revoked:
            raise TokenRevokedOnlyOnce(token=self.id)
        self.trigger_event(
            self.TokenRevoked, reason=require_reason(reason, action="revoke a token")
        )
