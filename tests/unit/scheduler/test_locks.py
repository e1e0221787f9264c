"""The in-process job lock (SQLite) and the advisory lock keys (PostgreSQL); no I/O."""

from __future__ import annotations

from closedloop.scheduler.locks import LocalJobLock, advisory_key


def test_one_holder_per_job_and_database_file() -> None:
    first, second = LocalJobLock("/data/a.db"), LocalJobLock("/data/a.db")
    with first.hold("settlement") as held:
        assert held
        with second.hold("settlement") as also:
            assert not also
        with second.hold("deadlines") as other_job:
            assert other_job
        with LocalJobLock("/data/b.db").hold("settlement") as other_database:
            assert other_database
    with second.hold("settlement") as released:
        assert released


def test_advisory_keys_are_stable_signed_64_bit_and_distinct() -> None:
    key = advisory_key("public", "settlement")
    assert key == advisory_key("public", "settlement")
    assert -(2**63) <= key < 2**63
    assert (
        len({key, advisory_key("public", "deadlines"), advisory_key("tenant", "settlement")}) == 3
    )
