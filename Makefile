# keyturn: `make demo` runs the main job end to end, `make test` runs the whole suite.
# Everything installs into .venv from the hashed lock file (pip --require-hashes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint lock clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: venv
	$(BIN)/python -m keyturn.demo

test: venv
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check keyturn tests bench worker.py

# Re-resolve the lock file after changing dependencies in pyproject.toml.
lock:
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	-$(BIN)/keyturn dev down
	rm -rf $(VENV) .keyturn
