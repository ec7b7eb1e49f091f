# StreamGuard — one entry point for building, running, testing, benchmarking and linting.
#
# Every target installs what it needs into .venv/ (maturin, the Python dependencies from
# pyproject.toml with the dev extra, and a release build of the Rust extension), so a machine
# with only the Rust toolchain, Python 3.11 and pip is enough. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# Python 3.11 if present, else whatever python3 is (requires-python >= 3.11 is checked by pip).
PYTHON_BOOT := $(shell command -v python3.11 || command -v python3)
# Rebuild the extension only when something it is compiled from changes.
EXT_SOURCES := $(shell find core/src -name '*.rs') core/Cargo.toml Cargo.toml pyproject.toml \
	$(wildcard proto/streamguard/v1/*.proto)
EXT_STAMP := $(VENV)/.streamguard-ext.stamp
# maturin needs to know which environment to install into.
export VIRTUAL_ENV := $(abspath $(VENV))
# pyo3's build script (clippy/check with the python feature) uses the venv's interpreter.
export PYO3_PYTHON := $(abspath $(BIN)/python)

BENCH_ARGS ?=
BENCH_JSON ?= bench-results/bench.json

.PHONY: help build run test bench lint fmt clean

help: ## List the targets
	@echo "StreamGuard make targets (each installs what it needs into $(VENV)/):"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-7s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON_BOOT) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 'maturin>=1.9,<2'

# One release build per change of the Rust sources; the Python sources are installed editable.
$(EXT_STAMP): $(BIN)/python $(EXT_SOURCES)
	$(BIN)/maturin develop --release --extras dev --quiet
	@touch $@

build: $(EXT_STAMP) ## Install maturin + deps into .venv and build the extension (release); leaves .venv/bin/streamguard

run: build ## The live stack: private nats-server + engine, fed by the simulator (Ctrl-C stops)
	$(BIN)/streamguard up --demo

test: build ## Rust tests (no Python linked), then pytest against the built extension
	cargo test --workspace --features streamguard-core/nats --quiet
	$(BIN)/pytest -q

bench: build ## Single-core throughput (`streamguard bench`); BENCH_ARGS=--quick for a short run, BENCH_CRITERION=1 adds criterion
	@mkdir -p $(dir $(BENCH_JSON))
	$(BIN)/streamguard bench --json $(BENCH_JSON) $(BENCH_ARGS)
	@if [ "$${BENCH_CRITERION:-0}" = 1 ]; then cargo bench -p streamguard-core; fi

lint: build ## rustfmt, clippy (with and without the python feature), ruff, mypy --strict, stubtest
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	cargo clippy --workspace --all-targets --features streamguard-core/nats --quiet -- -D warnings
	cargo clippy -p streamguard-core --features python --lib --quiet -- -D warnings
	$(BIN)/ruff check python tests
	$(BIN)/ruff format --check python tests
	$(BIN)/mypy --strict python/streamguard
	$(BIN)/python -m mypy.stubtest streamguard._core

fmt: build ## Apply rustfmt and ruff format
	cargo fmt --all
	$(BIN)/ruff format python tests
	$(BIN)/ruff check --fix python tests

clean: ## Remove .venv, the built extension and Cargo's target dir
	rm -rf $(VENV) python/streamguard/_core*.so .pytest_cache .mypy_cache .ruff_cache
	cargo clean
