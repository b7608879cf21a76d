# The README's two commands: `make audit` and `make test`. Both set everything up first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ddd-audit-installed
OUT    ?= runs/default
MODELS ?= efficientnet_lite0@48

.PHONY: setup audit test test-fast app figures bench gpu-check lint clean docs

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

## make audit: set up, then run the default audit (Fashion-MNIST, quick preset, one pretrained probe model)
audit: $(STAMP)
	$(PY) -m audit run --dataset fashion-mnist --variants quick --models $(MODELS) --out $(OUT)

## make test: set up, then run the whole test suite (slow and browser tests included)
test: $(STAMP)
	bash scripts/run_tests.sh -q

test-fast: $(STAMP)
	DDD_NO_POSTGRES=1 bash scripts/run_tests.sh -q -m "not slow and not browser"

## make app: open the report of the default audit
app: $(STAMP)
	$(VENV)/bin/ddd-audit app $(OUT)

## make figures: the README's figures, drawn from the default audit's report into $(OUT)/figures/ (untracked);
## `make figures FIGURES_OUT=docs/figures` replaces the README's copies on purpose
FIGURES ?= histogram,kappa_by_condition
FIGURES_OUT ?= $(OUT)/figures
figures: $(STAMP)
	$(PY) -m audit figures $(OUT) --out $(FIGURES_OUT) --format png --only $(FIGURES)

## make bench: run every benchmark and rewrite benchmarks/RESULTS.md
bench: $(STAMP)
	$(PY) benchmarks/run_all.py

## make gpu-check: every CUDA path once and the `paper` variant's cost (benchmarks/gpu_check.py; tiny sizes
## without CUDA). Needs no set-up: a GPU machine without the venv runs it with its own python3
GPU_PY := $(if $(wildcard $(PY)),$(PY),python3)
gpu-check:
	$(GPU_PY) benchmarks/gpu_check.py --device auto

## make docs: build the documentation site into site/ (offline; strict, so a broken link or reference fails)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
