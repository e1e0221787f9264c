"""Errors the domain raises. Each rule of the loop is a class named as the rule it protects."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    rule: ClassVar[str] = "DomainError"


class RuleViolation(DomainError):
    """A command would break a rule of the loop; nothing was recorded.

    Subclasses are named after the rule (``ProblemResolvedOnlyOnce``) and document it in their
    docstring; the message names the rule and the offending values.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.rule = cls.__name__

    def __init__(self, **values: Any) -> None:
        self.values = values
        summary = " ".join((self.__doc__ or self.rule).split())
        details = ", ".join(f"{name}={value!s}" for name, value in values.items())
        super().__init__(f"{self.rule}: {summary}" + (f" ({details})" if details else ""))


class InvalidValue(RuleViolation):
    """A field's value is outside what the loop accepts."""


class ReasonRequired(RuleViolation):
    """Revisions, revocations, withdrawals and corrections must state a reason."""


class NotFound(DomainError):
    """No aggregate of that kind has that id."""

    rule = "MustExist"

    def __init__(self, kind: str, aggregate_id: UUID | str) -> None:
        self.kind = kind
        self.aggregate_id = aggregate_id
        super().__init__(f"{kind} {aggregate_id} does not exist")


class ConcurrencyConflict(DomainError):
    """Someone else changed the aggregate first; reload and try again. Nothing was recorded."""

    rule = "OneWriterWinsPerVersion"

    def __init__(
        self, aggregate_id: UUID, expected_version: int | None, actual_version: int | None
    ) -> None:
        self.aggregate_id = aggregate_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"{self.rule}: aggregate {aggregate_id} is at version {actual_version}, "
            f"the command expected {expected_version}"
        )
