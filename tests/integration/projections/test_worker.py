"""A projection worker killed at any moment and restarted leaves no duplicate and no missing row."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from closedloop.bootstrap import Runtime, build_runtime
from closedloop.demo import load_demo
from closedloop.settings import Settings


@pytest.fixture
def runtime(store_settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(store_settings)
    try:
        yield built
    finally:
        built.close()


def worker(settings: Settings, log: Any) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CLOSEDLOOP_DATABASE_URL": settings.database_url or "",
        "CLOSEDLOOP_DATABASE_SCHEMA": settings.database_schema,
        "CLOSEDLOOP_PROJECTION_BATCH_SIZE": "7",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "closedloop.cli", "projections", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def snapshot(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = {}
    for projection in runtime.projections.projections:
        for table in projection.tables:
            rows = runtime.db.query(f"SELECT * FROM {table}")
            tables[table] = sorted(rows, key=repr)
    return tables


def test_killed_and_restarted_workers_converge_on_the_rebuild(
    runtime: Runtime, store_settings: Settings, tmp_path: Any
) -> None:
    load_demo(runtime.service)
    head = runtime.service.head_position()
    chance = random.Random(7)
    log = (tmp_path / "worker.log").open("wb")
    for _ in range(3):
        process = worker(store_settings, log)
        time.sleep(0.8 + chance.random())
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finisher = worker(store_settings, log)
    try:
        deadline = time.monotonic() + 60
        while min(runtime.projections.positions().values()) < head:
            assert time.monotonic() < deadline, runtime.projections.positions()
            assert finisher.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
    finally:
        finisher.send_signal(signal.SIGTERM)
        finisher.wait(10)
        log.close()
    followed = snapshot(runtime)
    for projection in runtime.projections.projections:
        runtime.projections.rebuild(projection)
    assert snapshot(runtime) == followed
