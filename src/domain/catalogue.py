"""The event catalogue: every event class the loop can record, by aggregate."""

from __future__ import annotations

from closedloop.domain.access import AccessToken
from closedloop.domain.awards import Award
from closedloop.domain.base import LoopAggregate, LoopEvent
from closedloop.domain.cycles import Cycle
from closedloop.domain.duties import Duty
from closedloop.domain.measures import Measure
from closedloop.domain.meetings import Meeting
from closedloop.domain.people import Person
from closedloop.domain.problems import Problem
from closedloop.domain.rectifications import Rectification
from closedloop.domain.settlement import Settlement
from closedloop.domain.targets import Target
from closedloop.domain.units import Unit

AGGREGATES: tuple[type[LoopAggregate], ...] = (
    Unit,
    Person,
    Cycle,
    Target,
    Problem,
    Measure,
    Duty,
    Meeting,
    Rectification,
    Award,
    Settlement,
    AccessToken,
)


def event_classes(aggregate: type[LoopAggregate]) -> list[type[LoopEvent]]:
    """The concrete events defined on one aggregate (not the shared bases)."""
    return [
        value
        for name, value in vars(aggregate).items()
        if isinstance(value, type)
        and issubclass(value, LoopEvent)
        and name not in ("Event", "Created")
    ]


def event_type_names() -> list[str]:
    """Every event type name, e.g. ``ProblemResolved``, once each. Names are unique across
    aggregates except ``DeadlineMissed``, which measures, rectifications and problems share."""
    names = (cls.__name__ for aggregate in AGGREGATES for cls in event_classes(aggregate))
    return list(dict.fromkeys(names))
