# Two commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip install -c constraints.txt
STAMP   := $(VENV)/.installed
THREADS ?= 2

.PHONY: install demo test test-slow bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -q torch==2.13.0
	$(PIP) -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	OMP_NUM_THREADS=$(THREADS) $(BIN)/alphaloop run recipes/quickstart.toml

test: install
	$(BIN)/ruff check alphaloop tests benchmarks docs/examples
	OMP_NUM_THREADS=$(THREADS) $(BIN)/pytest -q

test-slow: install
	OMP_NUM_THREADS=$(THREADS) $(BIN)/pytest -q -m slow

bench: install
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/rollout.py
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/train.py
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/rl_step.py
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/mcts.py
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/selfplay.py

lint: install
	$(BIN)/ruff check alphaloop tests benchmarks docs/examples
	$(BIN)/ruff format --check alphaloop tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
