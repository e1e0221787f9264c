# The two commands of the README's quickstart, and what .ci/run calls.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PGURL ?= postgresql://postgres@127.0.0.1:5432
TEST_DB ?= closedloop_test
export CLOSEDLOOP_TEST_POSTGRES_URL ?= $(PGURL)/$(TEST_DB)

.PHONY: install run test lint bench

$(BIN)/closedloop: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/closedloop

# Installs, then serves the API on ./closedloop.db with the demo year loaded (once) and an admin
# token printed: open http://127.0.0.1:8000/docs and press Authorize.
run: install
	$(BIN)/closedloop serve --demo

# The whole suite, SQLite and PostgreSQL legs. Creates the test database if it is missing.
test: install
	@psql "$(PGURL)/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$(TEST_DB)'" \
		| grep -q 1 || psql "$(PGURL)/postgres" -qc 'CREATE DATABASE "$(TEST_DB)"'
	$(BIN)/python -m pytest

# mypy resolves `closedloop` through a link to src/ (the editable install maps it at run time only).
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	rm -rf .mypy-root && mkdir .mypy-root && ln -s ../src .mypy-root/closedloop
	cd .mypy-root && ../$(BIN)/mypy --config-file ../pyproject.toml

bench: install
	$(BIN)/python bench/commands.py
