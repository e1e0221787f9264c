"""Idempotency records: a retried POST with the same key returns the first result.

Records live in the database (not in process memory), so they hold across restarts and API
replicas. A key is claimed before the command runs; a second request with the key finds the claim
and either replays the stored response, reports a different body (422), or, while the first is
still running, a conflict. A command that fails writes nothing, so its claim is released.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from closedloop.store.sql import Database

TABLE = "closedloop_idempotency"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a key: ours to run, a replay, a mismatch, or still running."""

    outcome: str  # "claimed" | "replay" | "mismatch" | "in_progress"
    response: StoredResponse | None = None


class IdempotencyRecords:
    def __init__(self, db: Database) -> None:
        self.db = db

    def setup(self) -> None:
        with self.db.transaction() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                "principal TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, "
                "status INTEGER, body TEXT, headers TEXT, created_at TEXT NOT NULL, "
                "PRIMARY KEY (principal, key))"
            )

    def claim(self, principal: str, key: str, request_hash: str) -> Claim:
        with self.db.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {TABLE} (principal, key, request_hash, created_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (principal, key) DO NOTHING",
                [principal, key, request_hash, datetime.now(UTC).isoformat()],
            )
            if cursor.rowcount == 1:
                return Claim("claimed")
            cursor.execute(
                f"SELECT request_hash, status, body, headers FROM {TABLE} "
                "WHERE principal = %s AND key = %s",
                [principal, key],
            )
            row = cursor.fetchone()
        if row is None:  # released between our insert and select: try once more
            return self.claim(principal, key, request_hash)
        if row["request_hash"] != request_hash:
            return Claim("mismatch")
        if row["status"] is None:
            return Claim("in_progress")
        return Claim(
            "replay",
            StoredResponse(int(row["status"]), json.loads(row["body"]), json.loads(row["headers"])),
        )

    def complete(self, principal: str, key: str, response: StoredResponse) -> None:
        with self.db.transaction() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET status = %s, body = %s, headers = %s "
                "WHERE principal = %s AND key = %s",
                [
                    response.status,
                    json.dumps(response.body, ensure_ascii=False),
                    json.dumps(response.headers),
                    principal,
                    key,
                ],
            )

    def release(self, principal: str, key: str) -> None:
        with self.db.transaction() as cursor:
            cursor.execute(
                f"DELETE FROM {TABLE} WHERE principal = %s AND key = %s AND status IS NULL",
                [principal, key],
            )
