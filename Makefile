# Two commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip install -c constraints.txt
STAMP   := $(VENV)/.installed
THREADS ?= 2
# Test workers (pytest-xdist), one core each: the suite is mostly single-threaded work and
# subprocess start-ups, so two workers halve its wall time on 2 cores (11m29s -> 5m53s, AMD EPYC).
TEST_WORKERS ?= 2

.PHONY: install sysdeps demo test test-slow bench bench-openspiel lint clean

# System packages: bubblewrap isolates the `code` env's sandbox (without it the sandbox runs with
# resource limits and an audit hook only, and says so); chromium runs the web app's browser tests
# (tests/serve/test_web_browser.py, through Playwright; skipped, saying so, without it). Installed
# with apt-get where missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo)
sysdeps:
	@command -v bwrap >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  $(SUDO) apt-get install -y -q --no-install-recommends bubblewrap >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null 2>&1 && $(SUDO) apt-get install -y -q --no-install-recommends bubblewrap >/dev/null 2>&1; } || \
	  echo "bubblewrap could not be installed: the code sandbox will use resource limits only"
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  $(SUDO) apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null 2>&1 && $(SUDO) apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } || \
	  echo "chromium could not be installed: the web app's browser tests will be skipped"

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -q torch==2.13.0
	$(PIP) -q -e ".[dev,serve]"
	touch $(STAMP)

install: $(STAMP) sysdeps

demo: install
	OMP_NUM_THREADS=$(THREADS) $(BIN)/alphaloop run recipes/quickstart.toml

test: install
	$(BIN)/ruff check alphaloop tests benchmarks docs/examples
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n $(TEST_WORKERS)

test-slow: install
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -m slow -n $(TEST_WORKERS)

bench: install
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/rollout.py
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/train.py
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/rl_step.py
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/mcts.py
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/selfplay.py
	OMP_NUM_THREADS=$(THREADS) $(BIN)/python benchmarks/contention.py --threads $(THREADS)

# OpenSpiel's Python AlphaZero side by side with our search and self-play, measured in the same
# run at equal games in flight (benchmark only: its own venv, since it brings JAX and flax).
# Pinned (benchmarks/openspiel-constraints.txt): OpenSpiel's AlphaZero imports chex, which
# nothing in an unpinned jax/flax/optax install brings any more.
OS_VENV ?= .venv-openspiel
OS_PINS := benchmarks/openspiel-constraints.txt
$(OS_VENV)/.installed: $(OS_PINS)
	$(PY) -m venv $(OS_VENV)
	$(OS_VENV)/bin/pip install -q --upgrade pip
	$(OS_VENV)/bin/pip install -q -c $(OS_PINS) open_spiel==2.0.2 jax jaxlib flax optax chex orbax-checkpoint
	$(OS_VENV)/bin/python -c "import chex, flax, optax, pyspiel; from open_spiel.python.algorithms.alpha_zero import alpha_zero, model_linen"
	touch $@

bench-openspiel: install $(OS_VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/mcts.py --openspiel-python $(OS_VENV)/bin/python
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/selfplay.py --threads 1 --openspiel-python $(OS_VENV)/bin/python

lint: install
	$(BIN)/ruff check alphaloop tests benchmarks docs/examples
	$(BIN)/ruff format --check alphaloop tests benchmarks

clean:
	rm -rf $(VENV) $(OS_VENV) runs .pytest_cache
