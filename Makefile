# cascade — the two commands a newcomer runs: `make demo` and `make test`.
# Everything installs into .venv from the committed, hash-pinned requirements.lock.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
UV_PIN  := uv==0.13.8
STAMP   := $(VENV)/.synced

.PHONY: setup install warm demo test bench golden lint lock clean reports

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

# Compile the numba kernel once into numba's cache next to the installed package (1-2 min after each
# install; seconds when cached), so the test workers load it instead of each compiling it at once.
warm: install
	cd tests && ../$(BIN)/python -m optimizer.engine.warm

test: warm
	cd tests && ../$(BIN)/python -m pytest -n auto

bench: install
	$(BIN)/python benchmarks/run.py

# Rewrite tests/golden/ after a model change on purpose (refuses in CI); review and commit the diff.
golden: install
	$(BIN)/python tests/golden/regenerate.py

# The reports in reports/: every bundled proposal example (data/proposals/) on its default stress, the two
# backtests, and two optimisation studies (a lending venue's and a perp venue's). Folder names carry no date,
# so regenerating replaces them; a proposal that breaks its scenario's risk budget exits 3 and still writes
# its report.
REPORT_STUDY := runs/make-reports.journal
REPORT_PERP  := runs/make-reports-perp.journal
reports: install
	@export CASCADE_GIT_COMMIT=$$(git rev-parse HEAD 2>/dev/null); \
	for f in data/proposals/20*.toml; do \
	  n=$$(basename $$f .toml); echo "cascade proposal $$f"; \
	  $(BIN)/cascade proposal $$f --out reports/proposal_$$n; rc=$$?; \
	  if [ $$rc -ne 0 ] && [ $$rc -ne 3 ]; then exit $$rc; fi; \
	done; \
	for s in maker_eth_a_black_thursday_liq12 aave_v2_2021-05-19; do \
	  echo "cascade backtest $$s"; $(BIN)/cascade backtest $$s --out reports/backtest_$$s || exit $$?; \
	done; \
	rm -f $(REPORT_STUDY) $(REPORT_STUDY).*; mkdir -p runs; \
	echo "cascade optimize aave_v3_emode1_lst_depeg_24h"; \
	$(BIN)/cascade optimize aave_v3_emode1_lst_depeg_24h --trials 30 --storage $(REPORT_STUDY) \
	  --study make-reports --json > runs/make-reports.json; rc=$$?; \
	if [ $$rc -ne 0 ] && [ $$rc -ne 3 ]; then exit $$rc; fi; \
	$(BIN)/cascade report runs/make-reports.json --out reports/optimisation_aave_v3_emode1_lst_depeg_24h; \
	rm -f $(REPORT_PERP) $(REPORT_PERP).*; \
	echo "cascade optimize perp_binance_btc_synthetic_crash_3h"; \
	$(BIN)/cascade optimize perp_binance_btc_synthetic_crash_3h --trials 30 --storage $(REPORT_PERP) \
	  --study make-reports-perp --json > runs/make-reports-perp.json; rc=$$?; \
	if [ $$rc -ne 0 ] && [ $$rc -ne 3 ]; then exit $$rc; fi; \
	$(BIN)/cascade report runs/make-reports-perp.json --out reports/optimisation_perp_binance_btc_synthetic_crash_3h

lint: setup
	$(BIN)/ruff check optimizer protocols tests benchmarks tools

lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra postgres --python-version 3.11 \
		--generate-hashes -q -o requirements.lock

clean:
	rm -rf $(VENV) build dist runs
