# The two commands of the README. Each sets up a virtualenv in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ADDR ?= 127.0.0.1:8000
RESOURCE_ADDR ?= 127.0.0.1:8001
# The URLs the two demo sites are reached at: the tokens' issuer, and the resource service's audience.
ISSUER ?= http://$(ADDR)
RESOURCE_URL ?= http://$(RESOURCE_ADDR)
# Written by `manage.py demo` (mode 0600, git-ignored): the resource service's settings and secret.
RESOURCE_ENV ?= .demo-resource.env
MUTATION_WORKERS ?= 2
MUTATION_FUZZ_REQUESTS ?= 1000
MUTATION_FUZZ_RAW_REQUESTS ?= 500

.PHONY: demo test lint bench mutation clean newman

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,example]"
	touch $@

ISSUER_SITE = DJANGO_SETTINGS_MODULE=example_project.settings OAUTH_CC_ISSUER=$(ISSUER)
RESOURCE_SITE = DJANGO_SETTINGS_MODULE=example_project.resource_settings

## Run the example project on SQLite: the issuer and API at http://127.0.0.1:8000 (ADDR) and the
## resource-only service at http://127.0.0.1:8001 (RESOURCE_ADDR), its client secret read from
## $(RESOURCE_ENV). Both servers run as jobs of one shell that waits for the issuer: Ctrl-C, or a
## TERM to make (which make passes to the shell), runs the trap, which stops both. The resource
## service runs without auto-reload, so that stopping its one process stops it.
demo: $(BIN)/.installed
	$(ISSUER_SITE) $(BIN)/python manage.py migrate --noinput
	$(ISSUER_SITE) $(BIN)/python manage.py demo --resource-url $(RESOURCE_URL) --resource-env $(RESOURCE_ENV)
	. "$(abspath $(RESOURCE_ENV))" && $(RESOURCE_SITE) $(BIN)/python manage.py migrate --noinput
	resource=; issuer=; \
	trap 'kill $$issuer $$resource 2>/dev/null; wait' EXIT; \
	trap 'exit 130' INT TERM HUP; \
	( . "$(abspath $(RESOURCE_ENV))" && exec env $(RESOURCE_SITE) $(BIN)/python manage.py runserver --noreload $(RESOURCE_ADDR) ) & \
	resource=$$!; \
	$(ISSUER_SITE) $(BIN)/python manage.py runserver $(ADDR) & \
	issuer=$$!; \
	wait $$issuer

## Run the whole test suite (SQLite; set DATABASE_URL for PostgreSQL)
test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check oauth_cc
	$(BIN)/mypy oauth_cc
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python -m django makemigrations --check --dry-run

$(BIN)/.installed-mutation: pyproject.toml $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,example,mutation]"
	touch $@

## Mutation testing of the security-critical modules (mutmut; [tool.mutmut] in pyproject.toml).
## Starts from scratch each time; prints the score and every surviving mutant (mutation/report.py).
mutation: $(BIN)/.installed-mutation
	rm -rf mutants
	OAUTH_CC_FUZZ_REQUESTS=$(MUTATION_FUZZ_REQUESTS) OAUTH_CC_FUZZ_RAW_REQUESTS=$(MUTATION_FUZZ_RAW_REQUESTS) \
		HYPOTHESIS_PROFILE=oauth_cc-mutation $(BIN)/mutmut run --max-children $(MUTATION_WORKERS)
	$(BIN)/python mutation/report.py

## newman (npm) in .node/, for tests/test_postman_export.py (run by .ci/run)
newman: .node/node_modules/.bin/newman
.node/node_modules/.bin/newman:
	npm install --prefix .node --no-audit --no-fund --silent newman@6

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) example.sqlite3 resource.sqlite3 $(RESOURCE_ENV) .pytest_cache .mypy_cache mutants .node
