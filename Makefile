# cascade — the two commands a newcomer runs: `make demo` and `make test`.
# Everything installs into .venv from the committed, hash-pinned requirements.lock.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
UV_PIN  := uv==0.13.8
STAMP   := $(VENV)/.synced

.PHONY: setup install demo test bench golden lint lock clean

setup: $(STAMP)

# Re-sync only when the lock or the package metadata changes; the package itself is
# installed as a real (non-editable) wheel so tests exercise what users install.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q $(UV_PIN)
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	@touch $(STAMP)

install: setup
	@$(BIN)/uv pip install -q --python $(BIN)/python --no-deps --no-build-isolation --reinstall-package cascade-risk .

demo: install
	$(BIN)/cascade demo

test: install
	cd tests && ../$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/run.py

# Rewrite tests/golden/ after a model change on purpose (refuses in CI); review and commit the diff.
golden: install
	$(BIN)/python tests/golden/regenerate.py

lint: setup
	$(BIN)/ruff check optimizer protocols tests benchmarks tools

lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra postgres --python-version 3.11 \
		--generate-hashes -q -o requirements.lock

clean:
	rm -rf $(VENV) build dist runs
