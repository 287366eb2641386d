# The commands people type. Each creates the virtualenv first when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Ports are settings: `make dev PORT=3100`, `make demo PORT=3100 GOOGLE_PORT=9765`. A taken one stops the
# command before anything starts, naming it.
PORT ?= 3000
GOOGLE_PORT ?= 8765
ANTHROPIC_PORT ?= 8766
PAGE_PORT ?= 8767
SLACK_PORT ?= 8768
# `make dev`'s terminal shows warnings and errors; `make dev LOG_LEVEL=info` adds Dagster's INFO lines, among
# them one per sensor tick that requests nothing (agent_task_sensor ticks every 5 s; the daemon logs each
# skipped tick and has no per-sensor setting).
LOG_LEVEL ?= warning
# `dagster dev` (what users asked for) is marked superseded by `dg dev` in Dagster 1.13 and says so on every
# start; `dg dev` runs the same webserver and daemon but needs the dagster-dg-cli package, so the one warning
# is ignored here, by its text.
DEV_WARNINGS := ignore:Function `dev_command` is superseded
# The optional extras installed. `make dev EXTRAS=dev` (or `make test EXTRAS=dev`) leaves out the Claude Code
# backend (claude-agent-sdk, about 400 MB with its bundled CLI); the tests that run that CLI are then deselected.
EXTRAS ?= dev,claude-code
ifeq ($(findstring claude-code,$(EXTRAS)),)
PYTEST_SELECT := -m "not claude_code"
endif

.PHONY: install dev test lint format demo bench system-deps browser-deps

# System tools the product needs: bubblewrap sandboxes the agents' commands. Installed with apt-get when
# missing and we are root (as on CI and these machines); otherwise the one command to run is printed.
system-deps:
	@command -v bwrap >/dev/null && command -v prlimit >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing bubblewrap (the agents' sandbox) with apt-get..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap util-linux >/dev/null; \
	  else \
	    echo "bubblewrap is missing: run 'sudo apt-get install bubblewrap', then this command again."; exit 1; \
	  fi; }

# The headless-browser test of the demo (tests/test_demo_story.py) drives Debian's Chromium; installed the
# same way.
browser-deps:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing chromium (the demo's headless-browser test) with apt-get..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: run 'sudo apt-get install chromium', then this command again."; exit 1; \
	  fi; }

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c requirements.lock -e '.[$(EXTRAS)]'
	$(BIN)/pip check
	touch $(STAMP)

# instance/dagster.yaml is the one in force: DAGSTER_HOME holds a link to it (a home from before the file
# moved out of the repository root gets its link renewed).
$(DAGSTER_HOME)/dagster.yaml: instance/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	ln -sfn $(CURDIR)/instance/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# Only the virtualenv (and bubblewrap), for `jada` before the first `make dev` (README, "First steps").
install: system-deps $(STAMP)

dev: system-deps $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	@$(BIN)/python -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' $(PORT) 2>/dev/null || { \
	  echo "make dev: port $(PORT) is taken, nothing was started: stop the program using it, or run 'make dev PORT=$$(( $(PORT) + 100 ))'."; exit 1; }
	@echo "make dev: the Dagster UI will be at http://localhost:$(PORT) (Ctrl-C stops it; LOG_LEVEL=$(LOG_LEVEL))."
	@JADA_WEBSERVER_URL=$${JADA_WEBSERVER_URL:-http://localhost:$(PORT)} PYTHONWARNINGS='$(DEV_WARNINGS)' \
	  $(BIN)/dagster dev -w workspace.yaml -p $(PORT) --log-level $(LOG_LEVEL)

test: system-deps browser-deps $(STAMP)
	$(BIN)/pip check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_SELECT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: system-deps $(STAMP)
	$(BIN)/python -m jada_pipelines.emulators.demo --port $(PORT) --google-port $(GOOGLE_PORT) \
	  --anthropic-port $(ANTHROPIC_PORT) --page-port $(PAGE_PORT) --slack-port $(SLACK_PORT)

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done
