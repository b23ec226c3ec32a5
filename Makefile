# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test install install-dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, from a pin the user can override, so no other package pulls a different build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(STAMP)
install-dev: $(DEV_STAMP)

# The montage of structural classes, then a closed-loop simulated campaign with its plots.
demo: $(STAMP)
	$(BIN)/uedsteer demo --out demo_output
	rm -rf demo_output/catalog
	$(BIN)/uedsteer campaign --catalog demo_output/catalog --out demo_output

# Two workers: the suite is CPU-bound, one core each. The slow tests sit together in a few
# modules; with worksteal a worker that runs out of tests takes half of the other's queue
# instead of waiting idle for it to finish.
test: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist worksteal

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_structure_factor.py

clean:
	rm -rf $(VENV) demo_output build *.egg-info
