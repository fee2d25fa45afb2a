# Two commands: `make run` (set up and start the platform), `make test` (set up and run the suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv sanity-envs migrate lint bench clean

# uv installs the pinned requirements in seconds where pip takes minutes on a fresh machine;
# it comes from the same package index, into the virtualenv itself. Modules are compiled to
# bytecode on first import, not all of them at install time.
UV_VERSION := 0.13.9
$(STAMP): requirements/base.txt requirements/test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements/test.txt
	touch $(STAMP)

venv: $(STAMP) sanity-envs

## ansible-test sanity's own virtualenvs, once per machine (needs PyPI; a no-op when ready)
sanity-envs: $(STAMP)
	VENV=$(VENV) bash scripts/ansible-sanity.sh prime

## make run: API + Celery worker + beat in the foreground with embedded defaults (Ctrl-C stops all)
run: $(STAMP)
	VENV=$(VENV) bash scripts/run.sh

## make test: the whole suite in parallel lanes (SQLite, PostgreSQL, real workers), then promtool
test: $(STAMP) sanity-envs
	VENV=$(VENV) bash scripts/test.sh

migrate: $(STAMP)
	$(BIN)/python manage.py migrate

bench: $(STAMP)
	VENV=$(VENV) bash bench/run.sh

clean:
	rm -rf $(VENV) var
