from __future__ import annotations

from datetime import date

import pytest

from closedloop.domain.context import NoActor, acting_as, current_context
from closedloop.domain.duties import DutyTier
from closedloop.domain.errors import DomainError, RuleViolation
from closedloop.domain.units import Unit, UnitKind

from .factories import at, committee, cycle, duty, last_event, person, problem, unit


@pytest.fixture(autouse=True)
def actor() -> None:
    """Overrides the package's autouse actor: these tests choose their own context."""


def test_no_actor_outside_acting_as() -> None:
    with pytest.raises(NoActor, match="acting_as"):
        Unit.register(name="党委", kind=UnitKind.COMMITTEE, parent=None)


def test_command_outside_acting_as_records_nothing() -> None:
    with acting_as("tester"):
        root = committee()
        general, branch = unit(UnitKind.GENERAL_BRANCH, root), unit(UnitKind.BRANCH, root)

    with pytest.raises(NoActor):
        branch.move_under(general, parent_lineage=[general.id, root.id], reason="调整")
    assert (branch.version, len(branch.pending_events), branch.parent_id) == (1, 1, root.id)


def test_no_actor_is_a_domain_error_named_as_its_rule() -> None:
    assert issubclass(NoActor, DomainError)
    assert not issubclass(NoActor, RuleViolation)
    assert NoActor.rule == "EveryEventHasAnActor"


@pytest.mark.parametrize("blank", ["", "   "])
def test_actor_must_not_be_blank(blank: str) -> None:
    with pytest.raises(NoActor), acting_as(blank):
        pass  # pragma: no cover


def test_actor_and_correlation_id_recorded_on_events() -> None:
    with acting_as("auditor-07", correlation_id="req-42") as context:
        root = committee()
        branch = unit(UnitKind.BRANCH, root)

    assert (context.actor, context.correlation_id) == ("auditor-07", "req-42")
    for event in (*root.pending_events, *branch.pending_events):
        assert (event.actor, event.correlation_id) == ("auditor-07", "req-42")


def test_each_block_gets_its_own_generated_correlation_id() -> None:
    with acting_as("tester"):
        first, second = committee(), committee()
    with acting_as("tester"):
        third = committee()

    ids = [last_event(agg).correlation_id for agg in (first, second, third)]
    assert ids[0] == ids[1] != ids[2]
    assert all(len(correlation_id) == 32 for correlation_id in ids)


def test_later_events_record_whoever_acts_then() -> None:
    with acting_as("clerk", correlation_id="req-1"):
        root = committee()
        grassroots = unit(parent=root)
        member = person(grassroots)
    with acting_as("leader", correlation_id="req-2"):
        member.transfer_to(unit(UnitKind.DEPARTMENT, root), reason="调岗")

    created, transferred = member.pending_events
    assert (created.actor, created.correlation_id) == ("clerk", "req-1")
    assert (transferred.actor, transferred.correlation_id) == ("leader", "req-2")


def test_nested_acting_as_restores_the_outer_context() -> None:
    with acting_as("outer", correlation_id="o"):
        with acting_as("inner", correlation_id="i"):
            assert current_context().actor == "inner"
        assert current_context().actor == "outer"
        assert last_event(committee()).actor == "outer"


def test_context_ends_with_its_block_even_on_error() -> None:
    with pytest.raises(RuleViolation), acting_as("tester"):
        Unit.register(name="无上级", kind=UnitKind.BRANCH, parent=None)

    with pytest.raises(NoActor):
        current_context()


def test_reason_carried_on_the_event_and_stripped() -> None:
    with acting_as("tester"):
        grassroots = unit()
        held = duty(person(grassroots), grassroots, DutyTier.FIRST_RESPONSIBLE)
        held.relieve(effective_to=date(2026, 6, 30), reason="  工作调动\n")

    assert last_event(held).reason == "工作调动"


def test_reason_is_none_where_none_is_needed() -> None:
    with acting_as("tester"):
        root = committee()

    assert last_event(root).reason is None


def test_effective_at_carried_and_distinct_from_recording_time() -> None:
    found_at = at(2026, 3, 1)
    with acting_as("tester"):
        found = problem(cycle(), unit(), found_at=found_at)

    event = last_event(found)
    assert event.effective_at == found_at
    assert event.effective_time == found_at
    assert event.timestamp != found_at


def test_effective_time_falls_back_to_recording_time() -> None:
    with acting_as("tester"):
        root = committee()

    event = last_event(root)
    assert event.effective_at is None
    assert event.effective_time == event.timestamp
