"""Bulk reads and writes of read-model rows, one statement per batch on either store.

Every helper takes the database's ``dialect`` (``"sqlite"`` or ``"postgres"``, as the runner
gives it to each projection), so the statement is chosen without looking at the cursor.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any
from uuid import UUID

from closedloop.store.sql import Cursor, Row

# Parameters per ``IN (...)`` list on SQLite (before 3.32 it allows 999).
CHUNK = 500
# Integer columns of the read models' tables (PostgreSQL's bulk insert casts each column).
INTEGER_COLUMNS = frozenset(
    {
        "position",
        "version",
        "ordinal",
        "relieved_position",
        "depth",
        "withdrawn",
        "finished",
        "listed",
    }
)


# Text of the ids met lately, by their integer (a slot read, hashed in C: cheaper than hashing
# the UUID itself); dropped whole when full.
_ID_TEXTS: dict[int, str] = {}
_ID_TEXTS_LIMIT = 1 << 17


def id_text(value: UUID) -> str:
    """``str(value)``, remembered: the same ids recur through a batch and every read model, and
    formatting a UUID costs several times a look-up."""
    key = value.int
    text = _ID_TEXTS.get(key)
    if text is None:
        if len(_ID_TEXTS) >= _ID_TEXTS_LIMIT:
            _ID_TEXTS.clear()
        text = _ID_TEXTS[key] = str(value)
    return text


def chunked(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def insert_rows(
    cursor: Cursor,
    dialect: str,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    tail: str = "",
    *,
    integers: Collection[str] = INTEGER_COLUMNS,
) -> None:
    """INSERT ``rows`` (values in ``columns`` order) in bulk; ``tail``: e.g. an ON CONFLICT
    clause (keys distinct in ``rows``).

    On PostgreSQL one ``INSERT ... SELECT * FROM unnest(<one array per column>)``: a short,
    constant statement psycopg parses once, one round trip for any number of rows, arrays sent
    in binary (measured faster here than executemany in a pipeline, multi-row VALUES or a JSON
    document). On SQLite ``executemany``: one prepared statement, in process. Values are text,
    integers or None.
    """
    if not rows:
        return
    names = ", ".join(columns)
    if dialect == "postgres":
        arrays = ", ".join(
            f"%b::{'bigint' if column in integers else 'text'}[]" for column in columns
        )
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {tail}",
            [list(values) for values in zip(*rows, strict=True)],
        )
    else:
        marks = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}) {tail}", rows)


def select_in(
    cursor: Cursor,
    dialect: str,
    statement: str,
    column: str,
    keys: Collection[Any],
    condition: str = "",
) -> list[Row]:
    """``statement`` (a SELECT without WHERE) for the rows whose ``column`` is one of ``keys``
    (and that meet ``condition``, an SQL expression without parameters)."""
    if not keys:
        return []
    also = f" AND {condition}" if condition else ""
    wanted = list(keys)
    if dialect == "postgres":
        cursor.execute(f"{statement} WHERE {column} = ANY(%s){also}", [wanted])
        return cursor.fetchall()
    rows: list[Row] = []
    for part in chunked(wanted):
        marks = ", ".join(["%s"] * len(part))
        cursor.execute(f"{statement} WHERE {column} IN ({marks}){also}", part)
        rows.extend(cursor.fetchall())
    return rows


def delete_in(cursor: Cursor, dialect: str, table: str, column: str, keys: Sequence[Any]) -> None:
    """DELETE the rows of ``table`` whose ``column`` is one of ``keys``."""
    if not keys:
        return
    if dialect == "postgres":
        cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", [list(keys)])
        return
    for part in chunked(keys):
        marks = ", ".join(["%s"] * len(part))
        cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", list(part))
