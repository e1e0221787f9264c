"""Scoring rules (DESIGN §6): how a unit's stage score is computed from what the loop recorded.

Pure functions over plain values, shared by the live scoreboard and, later, stage settlement, so
both compute exactly the same numbers. Everything is ``Decimal``; nothing here does I/O.

The rules, with the defaults of :class:`ScoringPolicy`:

* **Scale.** Every score lies between 0 and 100.
* **Target result** (one target, one unit, one stage). Each confirmed value is scored against the
  stage's milestone (the annual target value when the stage has none):

  - quantitative, higher is better: ``value / reference * 100``; lower is better:
    ``reference / value * 100`` (a value of zero or below scores 100). Capped to 0-100, so doing
    better than the milestone scores 100. The baseline is not used.
  - qualitative: levels are listed best first. A level at or above the milestone's level scores
    100; below it, ``(worst index - level index) / (worst index - milestone index) * 100`` — the
    worst level scores 0 (unless it is the milestone itself). Without a milestone the reference
    is the best level, which makes the score the level's plain position in the rubric.
  - a value that does not fit the indicator (a level after the indicator was revised to a number,
    say) is ignored.

  Self-assessment and inspection combine 30/70 when both are confirmed. When only one of them is
  confirmed it counts alone (an inspection always counts; a self-assessment alone counts until
  an inspection arrives, and the scoreboard notes it).
* **Result component**: the points-weighted mean of the unit's target results for the stage,
  over the targets that have a result; targets without any confirmed value are left out (noted).
* **Process component**: ``100 - deductions + bonus``, clamped to 0-100. Deductions: 5 per
  overdue measure, 5 per rectification past its deadline, 5 per dispatched problem unresolved
  past its deadline; bonus: 2 per prominent problem resolved in the stage. Which facts count is
  decided by the caller (the scoreboard's rule: an item whose deadline falls on or before the
  stage's last day and is not finished). Absent when the unit had nothing due by the stage's end
  and no bonus.
* **Meeting component**: per meeting, the scores (normalised to 0-100 from the meeting's scale)
  are aggregated by ``mean`` or ``trimmed`` (drop one highest and one lowest when there are at
  least five raters, else the plain mean); several meetings in one stage are averaged.
* **Total**: the weighted sum of the components present, weights 0.5 / 0.3 / 0.2
  (result / process / meeting). When a component is absent the remaining weights are
  re-normalised to sum to 1 (at 4 decimal places; the last present component takes the
  remainder) and the result says so in its notes. No component at all: no total, no rank.
* **Rounding**: ``ROUND_HALF_UP`` to 2 decimal places for every reported score — target results,
  components and totals — and each step computes from the rounded values the step before reports.
* **Ranking**: by total, highest first, competition ranking ("1224": equal totals share a rank,
  the next rank skips); equal totals are listed by unit id. Units without a total are unranked
  and listed last, by unit id.
* **Rewards and penalties** (:class:`AwardRule`, applied at settlement to ranked units only):
  ``rank`` — rank at most N (ties at the boundary all qualify); ``top_share`` /
  ``bottom_share`` — the best / worst N units where N = share * ranked units rounded half up
  (a unit's place from the bottom is 1 + the units with a strictly lower total, so ties at the
  boundary all qualify); ``at_least`` / ``below`` — total at least / below a threshold.

A policy is stored in events as :meth:`ScoringPolicy.to_dict` (Decimals as strings) and read
back by :meth:`ScoringPolicy.from_dict`; :meth:`ScoringPolicy.digest` is the SHA-256 of that
form as canonical JSON, which settlements record.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Context, Decimal, Inexact, InvalidOperation
from functools import cached_property, lru_cache
from typing import Any, Generic, Literal, TypeVar, get_args

from closedloop.domain.errors import InvalidValue
from closedloop.domain.targets import Direction, Indicator, IndicatorKind

RESULT, PROCESS, MEETING = "result", "process", "meeting"
COMPONENTS: tuple[str, ...] = (RESULT, PROCESS, MEETING)

ZERO = Decimal(0)
HUNDRED = Decimal(100)
# Sums of points and scores are kept exact (no rounding at 28 digits), so adding them in any
# order, or incrementally, gives the same number.
EXACT = Context(prec=120, rounding=ROUND_HALF_UP, traps=[Inexact, InvalidOperation])
WEIGHT_QUANTUM = Decimal("0.0001")

Aggregation = Literal["mean", "trimmed"]
AwardBasis = Literal["rank", "top_share", "bottom_share", "at_least", "below"]
Value = Decimal | str


@dataclass(frozen=True)
class AwardRule:
    """A reward or penalty the cycle grants by rank, share or threshold (see the module doc)."""

    name: str
    kind: Literal["reward", "penalty"]
    basis: AwardBasis
    value: Decimal
    points: Decimal | None = None

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > 100:
            raise InvalidValue(field="award_rules.name", rule="1 to 100 characters")
        if self.kind not in ("reward", "penalty"):
            raise InvalidValue(field="award_rules.kind", rule="reward or penalty", value=self.kind)
        if self.basis not in get_args(AwardBasis):
            raise InvalidValue(
                field="award_rules.basis",
                rule="one of " + ", ".join(get_args(AwardBasis)),
                value=self.basis,
            )
        if not self.value.is_finite() or self.value < 0:
            raise InvalidValue(field="award_rules.value", rule="a non-negative number")
        if self.basis == "rank" and self.value != self.value.to_integral_value():
            raise InvalidValue(field="award_rules.value", rule="a whole rank", value=self.value)
        if self.basis.endswith("_share") and self.value > 1:
            raise InvalidValue(field="award_rules.value", rule="a share between 0 and 1")
        if self.points is not None and (not self.points.is_finite() or self.points < 0):
            raise InvalidValue(field="award_rules.points", rule="a non-negative number")

    def hits(self, ranked: Sequence[Ranked[K]]) -> list[Ranked[K]]:
        """The ranked units this rule applies to, in ranking order (unranked units never)."""
        scored = [r for r in ranked if r.rank is not None and r.total is not None]
        if self.basis == "rank":
            return [r for r in scored if _present_rank(r) <= self.value]
        if self.basis == "at_least":
            return [r for r in scored if _present(r.total) >= self.value]
        if self.basis == "below":
            return [r for r in scored if _present(r.total) < self.value]
        count = int((self.value * len(scored)).to_integral_value(rounding=ROUND_HALF_UP))
        if self.basis == "top_share":
            return [r for r in scored if _present_rank(r) <= count]
        # A unit's place from the bottom: 1 + the units with a strictly lower total.
        totals = sorted(_present(r.total) for r in scored)
        return [r for r in scored if 1 + bisect_left(totals, _present(r.total)) <= count]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "basis": self.basis,
            "value": str(self.value),
            "points": None if self.points is None else str(self.points),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], index: int = 0) -> AwardRule:
        where = f"award_rules.{index}"
        if not isinstance(data, Mapping):
            raise InvalidValue(field=where, rule="an object")
        unknown = set(data) - {"name", "kind", "basis", "value", "points"}
        if unknown:
            raise InvalidValue(field=f"{where}.{sorted(unknown)[0]}", rule="not a rule setting")
        try:
            return cls(
                name=str(data["name"]),
                kind=data["kind"],
                basis=data["basis"],
                value=_decimal(data["value"], f"{where}.value"),
                points=None
                if data.get("points") is None
                else _decimal(data["points"], f"{where}.points"),
            )
        except KeyError as missing:
            raise InvalidValue(field=f"{where}.{missing.args[0]}", rule="required") from None


@dataclass(frozen=True)
class ScoringPolicy:
    """A cycle's scoring rules. The defaults are the bureau's standing policy."""

    result_weight: Decimal = Decimal("0.5")
    process_weight: Decimal = Decimal("0.3")
    meeting_weight: Decimal = Decimal("0.2")
    self_assessment_share: Decimal = Decimal("0.3")
    inspection_share: Decimal = Decimal("0.7")
    overdue_measure_deduction: Decimal = Decimal(5)
    missed_rectification_deduction: Decimal = Decimal(5)
    unresolved_problem_deduction: Decimal = Decimal(5)
    prominent_resolved_bonus: Decimal = Decimal(2)
    meeting_aggregation: Aggregation = "trimmed"
    trim_min_raters: int = 5
    places: int = 2
    award_rules: tuple[AwardRule, ...] = ()

    def __post_init__(self) -> None:
        weights = self.weights
        if any(not w.is_finite() or w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise InvalidValue(field="weights", rule="non-negative, with a positive sum")
        shares = (self.self_assessment_share, self.inspection_share)
        if any(not s.is_finite() or s < 0 for s in shares) or sum(shares) != 1:
            raise InvalidValue(
                field="self_assessment_share", rule="shares are non-negative and sum to 1"
            )
        amounts = (
            self.overdue_measure_deduction,
            self.missed_rectification_deduction,
            self.unresolved_problem_deduction,
            self.prominent_resolved_bonus,
        )
        if any(not a.is_finite() or a < 0 for a in amounts):
            raise InvalidValue(field="deductions", rule="deductions and bonus are non-negative")
        if self.meeting_aggregation not in ("mean", "trimmed"):
            raise InvalidValue(field="meeting_aggregation", rule="mean or trimmed")
        if self.trim_min_raters < 3:
            raise InvalidValue(field="trim_min_raters", rule="at least 3")
        if not 0 <= self.places <= 6:
            raise InvalidValue(field="places", rule="between 0 and 6")
        names = [rule.name for rule in self.award_rules]
        if len(set(names)) != len(names):
            raise InvalidValue(field="award_rules.name", rule="rule names are unique")

    def to_dict(self) -> dict[str, Any]:
        """The policy as stored in events: JSON-ready, Decimals as strings."""
        data: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name == "award_rules":
                data[spec.name] = [rule.to_dict() for rule in value]
            else:
                data[spec.name] = str(value) if isinstance(value, Decimal) else value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoringPolicy:
        """A policy from its stored (or requested) form; settings left out take the defaults."""
        if not isinstance(data, Mapping):
            raise InvalidValue(field="policy", rule="an object")
        known = {spec.name: spec for spec in fields(cls)}
        values: dict[str, Any] = {}
        for name, raw in data.items():
            if name not in known:
                raise InvalidValue(field=name, rule="not a scoring policy setting")
            default = getattr(DEFAULT_POLICY, name)
            if name == "award_rules":
                if not isinstance(raw, list | tuple):
                    raise InvalidValue(field=name, rule="a list of rules")
                values[name] = tuple(AwardRule.from_dict(r, i) for i, r in enumerate(raw))
            elif isinstance(default, Decimal):
                values[name] = _decimal(raw, name)
            elif isinstance(default, int):
                if isinstance(raw, bool) or not isinstance(raw, int):
                    raise InvalidValue(field=name, rule="a whole number", value=raw)
                values[name] = raw
            else:
                values[name] = raw
        return cls(**values)

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict`."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def weights(self) -> dict[str, Decimal]:
        return {
            RESULT: self.result_weight,
            PROCESS: self.process_weight,
            MEETING: self.meeting_weight,
        }

    @cached_property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.places)

    def round(self, value: Decimal) -> Decimal:
        return value.quantize(self.quantum, rounding=ROUND_HALF_UP)

    def describe(self) -> dict[str, Any]:
        """The policy as JSON-ready values (Decimals as strings), for readers of a scoreboard."""
        return {
            "weights": {name: str(w) for name, w in self.weights.items()},
            "effects": {
                "self_assessment_share": str(self.self_assessment_share),
                "inspection_share": str(self.inspection_share),
                "rule": "both confirmed: weighted shares; only one confirmed: it counts alone",
            },
            "process": {
                "base": "100",
                "overdue_measure_deduction": str(self.overdue_measure_deduction),
                "missed_rectification_deduction": str(self.missed_rectification_deduction),
                "unresolved_problem_deduction": str(self.unresolved_problem_deduction),
                "prominent_resolved_bonus": str(self.prominent_resolved_bonus),
                "clamped": "0-100",
            },
            "meeting": {
                "aggregation": self.meeting_aggregation,
                "trim_min_raters": self.trim_min_raters,
                "rule": "trimmed drops one highest and one lowest score when at least "
                f"{self.trim_min_raters} raters scored, else the plain mean",
            },
            "missing_components": "remaining weights re-normalised to sum to 1",
            "rounding": f"ROUND_HALF_UP to {self.places} decimal places",
            "ranking": "competition ranking (1224) by total; ties listed by unit id",
            "award_rules": [rule.to_dict() for rule in self.award_rules],
        }


DEFAULT_POLICY = ScoringPolicy()


# --- target results ------------------------------------------------------------------------


def value_score(
    indicator: Indicator, milestone: Value | None, value: Value | None
) -> Decimal | None:
    """One confirmed value scored 0-100 against the milestone (unrounded); None if it does not
    fit the indicator."""
    if value is None:
        return None
    if indicator.kind is IndicatorKind.QUANTITATIVE:
        reference = milestone if _is_number(milestone) else indicator.target_value
        if not _is_number(value) or not _is_number(reference):
            return None
        assert isinstance(value, Decimal) and isinstance(reference, Decimal)
        return _clamp(_ratio(value, reference, indicator.direction) * HUNDRED)
    if not isinstance(value, str) or value not in indicator.levels:
        return None
    levels = indicator.levels
    worst = len(levels) - 1
    expected = levels.index(milestone) if isinstance(milestone, str) and milestone in levels else 0
    achieved = levels.index(value)
    if achieved <= expected:
        return HUNDRED
    return Decimal(worst - achieved) / Decimal(worst - expected) * HUNDRED


def _ratio(value: Decimal, reference: Decimal, direction: Direction | None) -> Decimal:
    if direction is Direction.LOWER_IS_BETTER:
        if value <= reference:
            return Decimal(1)
        return reference / value if reference > 0 else ZERO
    if value >= reference:
        return Decimal(1)
    return value / reference if reference > 0 else ZERO


def target_result(
    indicator: Indicator,
    milestone: Value | None,
    self_value: Value | None,
    inspection_value: Value | None,
    policy: ScoringPolicy = DEFAULT_POLICY,
) -> Decimal | None:
    """A target's stage result for one unit, 0-100 and rounded; None when nothing usable was
    confirmed. Both methods confirmed: weighted by the policy's shares; one: it counts alone."""
    own = value_score(indicator, milestone, self_value)
    inspected = value_score(indicator, milestone, inspection_value)
    if own is None and inspected is None:
        return None
    if own is None:
        assert inspected is not None
        return policy.round(inspected)
    if inspected is None:
        return policy.round(own)
    return policy.round(own * policy.self_assessment_share + inspected * policy.inspection_share)


def result_component(
    results: Iterable[tuple[Decimal, Decimal | None]], policy: ScoringPolicy = DEFAULT_POLICY
) -> Decimal | None:
    """Points-weighted mean of ``(points, result)`` pairs; pairs without a result are left out."""
    scored = [(points, result) for points, result in results if result is not None]
    total_points = exact_sum(points for points, _ in scored)
    weighted = exact_sum(EXACT.multiply(points, result) for points, result in scored)
    return weighted_mean(weighted, total_points, policy)


def weighted_mean(
    weighted: Decimal, total_points: Decimal, policy: ScoringPolicy = DEFAULT_POLICY
) -> Decimal | None:
    """``weighted / total_points``, clamped and rounded; None without points.

    Read models that keep the two sums incrementally (exact sums, see :data:`EXACT`) get the
    same number as :func:`result_component` over the same pairs.
    """
    if total_points <= 0:
        return None
    return policy.round(_clamp(weighted / total_points))


# --- meeting -------------------------------------------------------------------------------


def normalise(score: Decimal, scale_min: Decimal, scale_max: Decimal) -> Decimal:
    """A score on a meeting's scale, mapped onto 0-100 (unrounded)."""
    if scale_max <= scale_min:
        raise InvalidValue(field="scale", rule="scale_min < scale_max")
    return _clamp((score - scale_min) / (scale_max - scale_min) * HUNDRED)


def meeting_score(
    scores: Sequence[Decimal], policy: ScoringPolicy = DEFAULT_POLICY
) -> Decimal | None:
    """One unit's scores at one meeting (already on 0-100), aggregated and rounded.

    ``trimmed`` drops one highest and one lowest score when at least ``trim_min_raters`` raters
    scored; with fewer, and with ``mean``, it is the plain mean. None without scores.
    """
    if not scores:
        return None
    chosen = sorted(scores)
    if policy.meeting_aggregation == "trimmed" and len(chosen) >= policy.trim_min_raters:
        chosen = chosen[1:-1]
    return policy.round(sum(chosen, ZERO) / len(chosen))


def meeting_component(
    meetings: Sequence[Sequence[Decimal]], policy: ScoringPolicy = DEFAULT_POLICY
) -> Decimal | None:
    """The stage's meeting component: the mean of the unit's per-meeting scores."""
    per_meeting = [s for s in (meeting_score(m, policy) for m in meetings) if s is not None]
    return mean_of(exact_sum(per_meeting), len(per_meeting), policy)


def mean_of(total: Decimal, count: int, policy: ScoringPolicy = DEFAULT_POLICY) -> Decimal | None:
    """``total / count`` rounded; None when ``count`` is 0."""
    if count <= 0:
        return None
    return policy.round(total / count)


# --- process -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessFacts:
    """What the process component of one unit and stage is computed from.

    ``items_due``: measures, rectifications and dispatched problems of the unit whose deadline
    falls on or before the stage's last day (finished or not); the others count those of them
    still unfinished, and prominent problems resolved during the stage.
    """

    items_due: int = 0
    overdue_measures: int = 0
    missed_rectifications: int = 0
    unresolved_problems: int = 0
    prominent_resolved: int = 0

    @property
    def has_data(self) -> bool:
        return self.items_due > 0 or self.prominent_resolved > 0


def process_score(facts: ProcessFacts, policy: ScoringPolicy = DEFAULT_POLICY) -> Decimal | None:
    """``100 - deductions + bonus``, clamped to 0-100; None when nothing was due and no bonus."""
    if not facts.has_data:
        return None
    deductions = (
        facts.overdue_measures * policy.overdue_measure_deduction
        + facts.missed_rectifications * policy.missed_rectification_deduction
        + facts.unresolved_problems * policy.unresolved_problem_deduction
    )
    bonus = facts.prominent_resolved * policy.prominent_resolved_bonus
    return policy.round(_clamp(HUNDRED - deductions + bonus))


# --- totals and ranks ----------------------------------------------------------------------


@dataclass(frozen=True)
class UnitScore:
    """A unit's stage score: its components (None: absent), the weights used, total, notes."""

    components: dict[str, Decimal | None]
    weights: dict[str, Decimal]
    total: Decimal | None
    notes: tuple[str, ...] = field(default=())


def renormalised_weights(present: Sequence[str], policy: ScoringPolicy) -> dict[str, Decimal]:
    """The policy's weights of the ``present`` components, scaled to sum to exactly 1."""
    return dict(_renormalised(tuple(name for name in COMPONENTS if name in present), policy))


@lru_cache(maxsize=256)
def _renormalised(
    chosen: tuple[str, ...], policy: ScoringPolicy
) -> tuple[tuple[str, Decimal], ...]:
    weights = policy.weights
    total = sum((weights[name] for name in chosen), ZERO)
    if not chosen or total <= 0:
        return ()
    used: dict[str, Decimal] = {}
    for name in chosen[:-1]:
        used[name] = (weights[name] / total).quantize(WEIGHT_QUANTUM, rounding=ROUND_HALF_UP)
    used[chosen[-1]] = Decimal(1) - sum(used.values(), ZERO)
    # Trailing zeros dropped for display (0.625, not 0.6250); weights are at most 1, so
    # normalize() never turns one into exponent notation.
    return tuple((name, weight.normalize()) for name, weight in used.items())


@lru_cache(maxsize=256)
def _renormalisation_note(chosen: tuple[str, ...], policy: ScoringPolicy) -> tuple[str, ...]:
    absent = [name for name in COMPONENTS if name not in chosen]
    if not chosen:
        return ("no component has data for this stage",)
    if not absent:
        return ()
    shown = ", ".join(f"{name} {weight}" for name, weight in _renormalised(chosen, policy))
    return (f"no {' or '.join(absent)} data: weights re-normalised to {shown}",)


def unit_total(
    components: Mapping[str, Decimal | None], policy: ScoringPolicy = DEFAULT_POLICY
) -> UnitScore:
    """Combine the components present; absent ones re-normalise the others' weights."""
    values = {name: components.get(name) for name in COMPONENTS}
    chosen = tuple(name for name in COMPONENTS if values[name] is not None)
    weights = dict(_renormalised(chosen, policy))
    notes = _renormalisation_note(chosen, policy)
    if not weights:
        return UnitScore(values, {}, None, notes)
    total = sum((weights[name] * _present(values[name]) for name in weights), ZERO)
    return UnitScore(values, weights, policy.round(_clamp(total)), notes)


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Ranked(Generic[K]):
    unit_id: K
    total: Decimal | None
    rank: int | None


def rank(totals: Mapping[K, Decimal | None]) -> list[Ranked[K]]:
    """Competition ranking ("1224") by total, highest first, in display order.

    Equal totals share a rank and the next rank skips; ties are listed by ``str(unit_id)``.
    Units without a total get no rank and come last, also by ``str(unit_id)``.
    """
    scored = sorted(
        ((unit, total) for unit, total in totals.items() if total is not None),
        key=lambda item: (-item[1], str(item[0])),
    )
    ranked: list[Ranked[K]] = []
    previous: Decimal | None = None
    current = 0
    for index, (unit, total) in enumerate(scored, start=1):
        if total != previous:
            current, previous = index, total
        ranked.append(Ranked(unit, total, current))
    unscored = sorted((unit for unit, total in totals.items() if total is None), key=str)
    ranked.extend(Ranked(unit, None, None) for unit in unscored)
    return ranked


# --- helpers -------------------------------------------------------------------------------


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The exact sum of ``values`` (raises rather than round)."""
    total = ZERO
    for value in values:
        total = EXACT.add(total, value)
    return total


def _decimal(raw: Any, field_name: str) -> Decimal:
    """A Decimal from a stored string or a JSON number (never a float's binary noise)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise InvalidValue(field=field_name, rule="a decimal number", value=raw)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise InvalidValue(field=field_name, rule="a decimal number", value=raw) from None
    if not value.is_finite():
        raise InvalidValue(field=field_name, rule="a finite number", value=raw)
    return value


def _present_rank(ranked: Ranked[Any]) -> int:
    assert ranked.rank is not None
    return ranked.rank


def _is_number(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


def _clamp(value: Decimal) -> Decimal:
    return min(max(value, ZERO), HUNDRED)


def _present(value: Decimal | None) -> Decimal:
    assert value is not None
    return value
