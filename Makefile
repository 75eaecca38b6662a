# The two commands of the README: `make run` (set up, train, register, serve) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export MLFLOW_DISABLE_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

DATA ?= synthetic
K ?= 16
ACTIVITY ?= internet
OUT ?= results

.PHONY: install run test lint paper serve bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)


run: $(STAMP)
	$(BIN)/ddnn-train run-all --profile small --out $(OUT)
	@echo "Starting the service on 127.0.0.1:$${PORT:-8000} (docs at /docs). From another shell, a sample request:"
	@echo '  $(BIN)/python examples/sample_request.py'
	$(BIN)/ddnn-serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

test: lint
	$(BIN)/python -m pytest

paper: $(STAMP)
	$(BIN)/ddnn-train run-all --profile paper --data $(DATA) --top-k $(K) --activity $(ACTIVITY) --out $(OUT)

serve: $(STAMP)
	$(BIN)/ddnn-serve

bench: $(STAMP)
	$(BIN)/python bench/service_latency.py

clean:
	rm -rf $(VENV) results mlflow.db mlruns mlartifacts .pytest_cache .ruff_cache .mypy_cache
