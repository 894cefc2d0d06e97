# The two commands a new machine needs: `make demo` (the main job) and `make test`.
# Each one builds .venv first (and installs the system packages the project needs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv system-deps demo demo-simulator ui ui-stop test test-faults lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/python scripts/demo.py

# Airflow's UI on this machine, on the simulator (background processes; `make ui-stop` ends them)
ui: venv
	$(BIN)/python scripts/ui.py start

ui-stop:
	test ! -x $(BIN)/python || $(BIN)/python scripts/ui.py stop

demo-simulator: venv
	$(BIN)/python -m altibase_sim.demo

test: venv
	bash scripts/run-tests.sh

# every step of every variant failed under load, then recovered (CI runs a sample of it in `make test`)
test-faults: venv
	ALTIBASE_FAULT_MATRIX=full $(BIN)/python -m pytest -n "$${TEST_WORKERS:-2}" --dist worksteal --durations=10 tests/dags/test_fault_matrix.py

lint: venv
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python bench/simulator_roundtrip.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
