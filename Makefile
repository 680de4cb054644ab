# Two entry points for a fresh machine with only Python and pip:
#   make demo   -- set up .venv with the program's dependencies only, and run `inventory demo`
#   make test   -- add the test tools (the `dev` extra) and the AWS CLI's own venv; lint, type-check, test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AWSCLI_VENV := .venv-awscli
# Stamp of the `dev` extra's install: redone, like the program's, whenever pyproject.toml changes.
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: demo test lint setup clean schema browser assets

# The program and its runtime dependencies (`pip install -e .`): all `make demo` needs.
$(BIN)/inventory: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# The test tools on top: pytest, ruff, mypy and stubs, hypothesis, jsonschema, moto (ECR, STS and SQS), cfn-lint.
$(DEV_STAMP): $(BIN)/inventory pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The AWS CLI bundles its own botocore: it lives in its own venv and is only run as a subprocess.
$(AWSCLI_VENV)/bin/aws:
	$(PYTHON) -m venv $(AWSCLI_VENV)
	$(AWSCLI_VENV)/bin/pip install --quiet awscli
	touch $@

# The console's browser tests drive Debian's chromium through chromium-driver: installed with apt-get when
# missing, as root or through passwordless sudo (as .ci/run installs PostgreSQL); otherwise say what to install.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then as_root=""; elif sudo -n true 2>/dev/null; then as_root="sudo -n"; else \
	    echo "error: the browser tests need chromium and chromium-driver: apt-get install chromium chromium-driver" >&2; \
	    exit 1; fi; \
	  $$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

setup: $(DEV_STAMP) $(AWSCLI_VENV)/bin/aws browser

demo: $(BIN)/inventory
	$(BIN)/inventory demo

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest $(PYTEST_ARGS)

# schema/schema.graphql is the public contract: regenerate it when the GraphQL types change
schema: $(BIN)/inventory
	$(BIN)/python -c "from inventory.api.schema import schema; print(schema)" > schema/schema.graphql

# GraphiQL's files for `serve --dev` (inventory/console/static/graphiql/): fetched with `npm pack` from the npm
# registry at the versions pinned in inventory/console/assets.py, checked against its hashes, with their licences
assets: $(BIN)/inventory
	$(BIN)/python -m inventory.console.assets

clean:
	rm -rf $(VENV) $(AWSCLI_VENV) .inventory .pytest_cache .mypy_cache .ruff_cache
