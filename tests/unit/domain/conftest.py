"""Every domain unit test runs as ``tester`` unless its module overrides the ``actor`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from closedloop.domain.context import CommandContext, acting_as


@pytest.fixture(autouse=True)
def actor() -> Iterator[CommandContext]:
    with acting_as("tester", correlation_id="unit-test") as context:
        yield context
