# The two commands of the README: `make run` (set up, train, register, serve) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export MLFLOW_DISABLE_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

OUT ?= results
# `make paper`: the study of docs/RESULTS.md (GROUPS= and SEEDS= shrink it for a quick run)
DATA_DIR ?= ../shared/data/milano
CASES ?= block,hourly,tenmin
GROUPS ?=
SEEDS ?= 3
WEIGHTS ?= 0.9,0.1
# non-empty: DDNNConfig.paper() on every case, without the levers a case won on validation; its
# report goes to results/paper-models (docs/ keeps the default study's; once both runs are cached,
# `make paper` again adds the levers' paired test effect to docs/RESULTS.md without training)
PAPER_MODELS ?=
PAPER_OUT := $(if $(PAPER_MODELS),results/paper-models,docs)

.PHONY: install run test lint paper ablation serve bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)


# the main job's default data: the embedded 4x4 block of Milano cells (data/milano/README.md)
RUN_DATA ?= data/milano/internet_10min_block4x4_nov2013.csv.gz

run: $(STAMP)
	$(BIN)/ddnn-train run-all --profile small --data $(RUN_DATA) --activity internet --out $(OUT)
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
	$(BIN)/python -m studies.paper --data-dir $(DATA_DIR) --cases $(CASES) $(if $(GROUPS),--groups $(GROUPS)) \
		--seeds $(SEEDS) --weights $(WEIGHTS) $(if $(PAPER_MODELS),--paper-models) \
		--out $(PAPER_OUT)/results --results $(PAPER_OUT)/RESULTS.md

ablation: $(STAMP)
	$(BIN)/python -m studies.ablation --data-dir $(DATA_DIR) --cases block,hourly --groups 2 --seeds 3 --out docs/ablation.md

serve: $(STAMP)
	$(BIN)/ddnn-serve

bench: $(STAMP)
	$(BIN)/python bench/service_latency.py

clean:
	rm -rf $(VENV) results mlflow.db mlruns mlartifacts .pytest_cache .ruff_cache .mypy_cache
