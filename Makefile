# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test install install-dev lint bench clean crystal-model postgres chromium

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

# The montage of structural classes, then a closed-loop simulated campaign with its plots, then
# a 4D-STEM scan of gold nanoparticles mapped by the shipped crystal model.
demo: $(STAMP)
	$(BIN)/uedsteer demo --out demo_output
	rm -rf demo_output/catalog demo_output/stem_catalog
	$(BIN)/uedsteer campaign --catalog demo_output/catalog --out demo_output
	$(BIN)/uedsteer stem --nx 32 --ny 32 --catalog demo_output/stem_catalog --out demo_output

# The shipped crystal model (surrogates/crystal/model, its card MODEL_CARD.md): six crystal
# stores from recorded seeds (random crystals along 20 zone axes; thin, randomly oriented ones;
# small cells of real structure types; cubic crystals, which train only the cubic space-group
# forest; a second store of random crystals and of structure types), resumable (rerun to
# finish), then the compact models on the zone features (28 space-group and 8 lattice trees a
# system, to stay within 40 MB), trained on spot positions with a measurement's error (rms up
# to 0.004 1/Å, the 4D-STEM sample's) and evaluated on held-out materials.
CRYSTAL_DATA ?= data
CRYSTAL_STORES := $(CRYSTAL_DATA)/crystals_s21,$(CRYSTAL_DATA)/crystals_thin_s23,$(CRYSTAL_DATA)/crystals_types_s25,$(CRYSTAL_DATA)/crystals_cubic_s33,$(CRYSTAL_DATA)/crystals_s27,$(CRYSTAL_DATA)/crystals_types_s29
crystal-model: $(STAMP)
	$(BIN)/uedsteer generate crystals --out $(CRYSTAL_DATA)/crystals_s21 --n-materials 1000 \
		--seed 21 --workers 2
	$(BIN)/uedsteer generate crystals --out $(CRYSTAL_DATA)/crystals_thin_s23 \
		--n-materials 400 --seed 23 --workers 2 --set zone_axes=4 \
		--set random_orientations=12 --set thickness_nm=8.0
	$(BIN)/uedsteer generate crystals --out $(CRYSTAL_DATA)/crystals_types_s25 \
		--n-materials 600 --seed 25 --workers 2 --set 'sources={"prototype":1.0}' \
		--set max_atoms=8
	$(BIN)/uedsteer generate crystals --out $(CRYSTAL_DATA)/crystals_cubic_s33 \
		--n-materials 1000 --seed 33 --workers 2 --set 'systems=["cubic"]'
	$(BIN)/uedsteer generate crystals --out $(CRYSTAL_DATA)/crystals_s27 --n-materials 1000 \
		--seed 27 --workers 2
	$(BIN)/uedsteer generate crystals --out $(CRYSTAL_DATA)/crystals_types_s29 \
		--n-materials 600 --seed 29 --workers 2 --set 'sources={"prototype":1.0}' \
		--set max_atoms=8
	$(BIN)/uedsteer train crystal --data $(CRYSTAL_STORES) --features zone \
		--estimators compact --space-group-trees 28 --lattice-trees 8 --position-jitter 0.004 \
		--seed 0 --threads 2 --out surrogates/crystal/model

# Debian's PostgreSQL server for a facility's catalog (`uedsteer serve --start-postgres`) and its
# tests: installed when no initdb is found (needs root and Debian's package registry).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		(apt-get install -y --no-install-recommends postgresql || \
		 (apt-get update && apt-get install -y --no-install-recommends postgresql))

# Debian's headless Chromium and its WebDriver for the browser test of `uedsteer monitor`:
# installed when /usr/bin/chromium is missing (needs root and Debian's package registry); without
# it that test skips, saying why.
chromium:
	@test -x /usr/bin/chromium || \
		(apt-get install -y --no-install-recommends chromium chromium-driver || \
		 (apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver))

# Two workers: the suite is CPU-bound, one core each. The slow tests sit together in a few
# modules; with worksteal a worker that runs out of tests takes half of the other's queue
# instead of waiting idle for it to finish.
test: $(DEV_STAMP)
	-$(MAKE) --no-print-directory postgres chromium  # without them their tests skip, saying why
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist worksteal

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_structure_factor.py

clean:
	rm -rf $(VENV) demo_output build *.egg-info
