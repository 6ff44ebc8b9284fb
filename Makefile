# Developer entry points. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Model hubs are unreachable here: tests must only use weights that ship inside packages.
TEST_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PYTEST_ARGS ?=

.PHONY: venv test demo down lint clean

venv: $(STAMP)

# Re-installs whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[dev,embedded]"
	touch $@

# The whole suite runs on Elasticsearch, then the integration tests again on OpenSearch (MMSEARCH_ENGINE
# picks the engine the fixtures start; unit tests need no engine). Prints pytest's own exit code: make
# itself reports any failure as 2.
test: venv
	$(TEST_ENV) $(PY) -m pytest -q $(PYTEST_ARGS) || { rc=$$?; echo "pytest exited with code $$rc"; exit $$rc; }
	$(TEST_ENV) MMSEARCH_ENGINE=opensearch $(PY) -m pytest -q -m integration $(PYTEST_ARGS) \
	  || { rc=$$?; echo "pytest (OpenSearch) exited with code $$rc"; exit $$rc; }

demo: venv
	$(VENV)/bin/mmsearch up
	$(VENV)/bin/mmsearch demo

down:
	$(VENV)/bin/mmsearch down

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
