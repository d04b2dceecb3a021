# Two entry points: `make serve` (the product) and `make test` (the suite).
# Both create/update .venv; the install is redone only when pyproject.toml changes.
PYTHON ?= python3.11
VENV ?= .venv
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/live3dpe serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/live3dpe bench --input $(or $(CLIP),$(shell $(VENV)/bin/python -m testdata clips/d10.mp4))

clean:
	rm -rf $(VENV) build *.egg-info
