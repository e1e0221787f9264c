from __future__ import annotations

import importlib
import pkgutil
import uuid
from decimal import Decimal

import pytest

import closedloop.domain
from closedloop.domain.errors import (
    ConcurrencyConflict,
    DomainError,
    InvalidValue,
    NotFound,
    ReasonRequired,
    RuleViolation,
)
from closedloop.domain.meetings import ScoreWithinScale
from closedloop.domain.problems import ProblemResolvedOnlyOnce

from .factories import at, cycle, problem, unit


def all_rule_violations() -> list[type[RuleViolation]]:
    for module in pkgutil.iter_modules(closedloop.domain.__path__):
        importlib.import_module(f"closedloop.domain.{module.name}")
    found: list[type[RuleViolation]] = []
    pending = list(RuleViolation.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("closedloop.domain."):
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.__name__)


def test_message_names_the_rule_its_summary_and_the_offending_values() -> None:
    problem_id = uuid.uuid4()

    error = ProblemResolvedOnlyOnce(problem=problem_id, resolved_at=at(2026, 3, 15))

    assert str(error) == (
        "ProblemResolvedOnlyOnce: A problem that is resolved cannot be resolved again "
        f"(reopen it first). (problem={problem_id}, resolved_at=2026-03-15 09:00:00+08:00)"
    )
    assert error.rule == "ProblemResolvedOnlyOnce"
    assert error.values == {"problem": problem_id, "resolved_at": at(2026, 3, 15)}


def test_message_without_values_has_no_details() -> None:
    assert str(ReasonRequired()) == (
        "ReasonRequired: Revisions, revocations, withdrawals and corrections must state a reason."
    )


def test_invalid_value_names_the_field_the_rule_and_the_value() -> None:
    error = InvalidValue(field="points", rule="must be a positive number", value=Decimal("-3"))

    assert error.rule == "InvalidValue"
    assert str(error).endswith("(field=points, rule=must be a positive number, value=-3)")


def test_violation_raised_by_an_aggregate_names_rule_and_values() -> None:
    found = problem(cycle(), unit())
    found.resolve(evidence="已整改", resolved_at=at(2026, 3, 15))

    with pytest.raises(ProblemResolvedOnlyOnce) as info:
        found.resolve(evidence="再次", resolved_at=at(2026, 3, 16))

    message = str(info.value)
    assert message.startswith("ProblemResolvedOnlyOnce: ")
    assert f"problem={found.id}" in message
    assert "resolved_at=2026-03-15 09:00:00+08:00" in message


def test_score_violation_names_the_score_and_the_scale() -> None:
    error = ScoreWithinScale(score=Decimal("101"), scale_min=Decimal(0), scale_max=Decimal(100))

    assert "(score=101, scale_min=0, scale_max=100)" in str(error)


def test_chinese_values_appear_unchanged_in_the_message() -> None:
    error = InvalidValue(field="title", rule="必须填写", value="第一党支部")

    assert "rule=必须填写, value=第一党支部" in str(error)


@pytest.mark.parametrize("rule", all_rule_violations(), ids=lambda cls: cls.__name__)
def test_every_rule_is_named_after_its_class_and_documented(rule: type[RuleViolation]) -> None:
    assert rule.rule == rule.__name__
    assert (rule.__doc__ or "").strip(), f"{rule.__name__} has no docstring to state its rule"
    assert issubclass(rule, DomainError)
    assert str(rule(x=1)).startswith(f"{rule.__name__}: ")


def test_rule_catalogue_covers_the_rules_the_design_names() -> None:
    names = {cls.__name__ for cls in all_rule_violations()}

    assert {
        "ProblemResolvedOnlyOnce",
        "DeadlineWithinCycle",
        "ClosedStageAcceptsNoEffects",
        "RaterMayNotScoreOwnUnit",
        "ReasonRequired",
        "OnlyCommitteeStandsAlone",
        "UnitTreeHasNoCycles",
        "OneActiveFirstResponsiblePerUnit",
        "StagesMustTileTheCycle",
    } <= names


def test_undocumented_rule_still_names_itself() -> None:
    class Undocumented(RuleViolation):
        pass

    error = Undocumented(value=7)

    assert str(error).startswith("Undocumented")
    assert "value=7" in str(error)


def test_not_found_names_kind_and_id() -> None:
    missing = uuid.uuid4()

    error = NotFound("target", missing)

    assert (error.rule, error.kind, error.aggregate_id) == ("MustExist", "target", missing)
    assert str(error) == f"target {missing} does not exist"
    assert not isinstance(error, RuleViolation)


def test_concurrency_conflict_names_both_versions() -> None:
    aggregate_id = uuid.uuid4()

    error = ConcurrencyConflict(aggregate_id, expected_version=3, actual_version=5)

    assert error.rule == "OneWriterWinsPerVersion"
    assert str(error) == (
        f"OneWriterWinsPerVersion: aggregate {aggregate_id} is at version 5, the command expected 3"
    )
