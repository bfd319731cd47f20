# Two set-up commands, both from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

# One installer at a time: a second `make test` started while the first installs waits for it, then
# finds the stamp fresh and installs nothing.
$(STAMP): pyproject.toml
	flock $(VENV).lock sh -c '\
	  if [ ! -f $@ ] || [ pyproject.toml -nt $@ ]; then \
	    [ -x $(PY) ] || $(PYTHON) -m venv $(VENV); \
	    $(PY) -m pip install --quiet --upgrade pip && \
	    $(PY) -m pip install --quiet -e ".[test]" && touch $@; \
	  fi'

demo: $(STAMP)
	$(VENV)/bin/meshery-preflight demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q -n 2 -p no:cacheprovider

bench: $(STAMP)
	$(PY) bench/fleet.py

clean:
	rm -rf $(VENV) $(VENV).lock preflight-demo .pytest_cache .mypy_cache .ruff_cache
