# The two commands: `make dev` runs the whole local stack, `make test` runs every test against it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30

.PHONY: dev test bench install web browser checkov clean mutants

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

install: $(VENV)/.installed node_modules/.installed

web: node_modules/.installed
	node devstack/build_web.mjs

# Debian's Chromium for the browser test (the test tool cannot download its own browser here).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# checkov pins an older pycep-parser than the tests use, so it lives in a venv of its own.
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

checkov: $(CHECKOV_VENV)/.installed

dev: install web
	$(PY) -m devstack.stack up

test: install web browser checkov
	node --test web/test/
	$(PY) -m devstack.stack run -- $(PY) -m pytest tests

# mutmut pins its own dependencies, so it lives in a venv of its own (under .devstack, like the stack's state).
MUTMUT_VENV := .devstack/mutmut-venv
$(MUTMUT_VENV)/.installed:
	$(PYTHON) -m venv $(MUTMUT_VENV)
	$(MUTMUT_VENV)/bin/pip install --quiet mutmut==2.5.1
	touch $@

# Not part of `make test`: breaks each guarantee on purpose (tools/mutants) and checks the tests notice.
mutants: install web $(MUTMUT_VENV)/.installed
	$(PY) -m tools.mutants --mutmut-seconds 420

bench: install web
	$(PY) -m devstack.stack run -- $(PY) -m bench

clean:
	rm -rf .devstack local.stack.json web/dist test-artifacts
