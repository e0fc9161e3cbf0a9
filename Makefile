# The two commands of the README. Each sets up a virtualenv in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ADDR ?= 127.0.0.1:8000
MUTATION_WORKERS ?= 2
MUTATION_FUZZ_REQUESTS ?= 1000
MUTATION_FUZZ_RAW_REQUESTS ?= 500

.PHONY: demo test lint bench mutation clean newman

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,example]"
	touch $@

## Run the example project with its demo client on SQLite at http://127.0.0.1:8000
demo: $(BIN)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo
	$(BIN)/python manage.py runserver $(ADDR)

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
	rm -rf $(VENV) example.sqlite3 .pytest_cache .mypy_cache mutants .node
