# keyturn: `make demo` runs the main job end to end, `make test` runs the whole suite.
# Everything installs into .venv from the hashed lock file (pip --require-hashes);
# the tests' Node.js servers (Verdaccio, GitHub's OpenAPI description) install
# into tests/node from its package-lock.json (npm ci checks every integrity hash).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := tests/node/node_modules/.installed
BROWSER := /usr/bin/chromium /usr/bin/chromedriver

.PHONY: venv demo test lint lock clean

venv: $(STAMP) $(NODE_STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(NODE_STAMP): tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/python -m keyturn.demo

# The approvals page is tested in headless Chromium: Debian's chromium and chromium-driver.
$(BROWSER):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver \
	  || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)

test: venv $(BROWSER)
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check keyturn tests bench worker.py

# Re-resolve the lock file after changing dependencies in pyproject.toml.
lock:
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	-$(BIN)/keyturn dev down
	rm -rf $(VENV) .keyturn tests/node/node_modules
