# skyshard: `make demo` sets up and runs the main job on the embedded demo sky; `make test`
# runs the whole suite. Everything installs from the project's own pinned files.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

export SKYSHARD_DUCKDB ?= $(CURDIR)/data/skyshard.duckdb
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export PYTHONHASHSEED := 0

DBT_SOURCES := $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null) dbt_project/dbt_project.yml

.PHONY: setup demo dev test lint format system-deps manifest clean

setup: $(VENV)/.installed manifest $(DAGSTER_HOME)/dagster.yaml

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

manifest: dbt_project/target/manifest.json

dbt_project/target/manifest.json: $(VENV)/.installed $(DBT_SOURCES)
	cd dbt_project && ../$(BIN)/dbt parse --profiles-dir . --quiet

$(DAGSTER_HOME)/dagster.yaml: orchestration/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp orchestration/dagster.yaml $@

demo: setup
	$(BIN)/skyshard demo

dev: setup
	$(BIN)/skyshard dev

system-deps:
	bash scripts/system-deps.sh

test: setup system-deps
	$(BIN)/pytest -q

lint:
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf data dbt_project/target dbt_project/logs
