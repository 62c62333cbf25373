# `make lab` and `make test` are the contract: each sets everything up on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PRESET  ?= quick
OUT     ?= runs/$(PRESET)

.PHONY: setup lab test bench clean

setup: $(STAMP)

# torch first, pinned to the CPU wheel on this disk, so no dependency can pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,ray]'
	touch $(STAMP)

lab: setup
	$(BIN)/sftlens lab --preset $(PRESET) --out $(OUT)

test: setup
	$(BIN)/python -m pytest

bench: setup
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf runs .pytest_cache
