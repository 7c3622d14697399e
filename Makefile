# make test | make demo | make bench | make serve — each creates the virtualenv it needs.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# Python 3.12 matches the Lambda runtime in zappa_settings.json.
PYTHON ?= $(shell for p in python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.13 python3; do \
	  $$p -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: venv test lint demo bench serve clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-pins.txt requirements-container.txt \
	    test-requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt \
	    -r requirements-container.txt -r test-requirements.txt
	touch $@

lint: venv
	$(BIN)/flake8

test: venv lint
	AWS_EC2_METADATA_DISABLED=true $(BIN)/pytest --cov=api --cov-report=term-missing:skip-covered --cov-fail-under=90

demo: venv
	$(BIN)/python -m tests.demo

bench: venv
	$(BIN)/python -m tests.bench

# The container's command (Dockerfile CMD, checked by tests/test_container.py) on
# this host: PORT (9090), RELAY_HOST (0.0.0.0), RELAY_WORKERS, RELAY_THREADS.
SERVE := gunicorn --config gunicorn.conf.py app:app
serve: venv
	$(BIN)/$(SERVE)

clean:
	rm -rf $(VENV) .venv-lambda build .pytest_cache .coverage

# --- offline AWS deployment tests (issue 7) ------------------------------------
# `make test` runs them too (they live in tests/); this target runs them alone.
.PHONY: test-deploy
test-deploy: venv
	AWS_EC2_METADATA_DISABLED=true $(BIN)/pytest tests/test_deploy.py tests/test_package.py tests/test_module_type.py
