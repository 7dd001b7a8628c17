# labelgate — two commands set everything up on a fresh machine:
#   make demo   create .venv, install, score the bundled examples, write a report to out/
#   make test   install test extras, start the real servers the suite needs, run pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LS_VENV := .venv-labelstudio
OUT := out

.PHONY: demo test lint bench install services clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The Label Studio server lives in its own venv so its pins never constrain labelgate's.
$(LS_VENV)/.installed:
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q --upgrade pip
	$(LS_VENV)/bin/python -m pip install -q 'label-studio==1.23.2'
	touch $@

# Debian packages for the servers and browser the suite starts itself.
services:
	@need=""; \
	command -v redis-server >/dev/null || need="$$need redis-server"; \
	command -v chromium >/dev/null || need="$$need chromium"; \
	(command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1) || need="$$need postgresql"; \
	if [ -n "$$need" ]; then \
	  echo "installing:$$need"; \
	  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$need >/dev/null; \
	fi

# The main job: every bundled annotator scored against the ground truth, agreement, scorecards,
# alerts and the release gate, written as a self-contained HTML page and JSON. The history lives
# in the embedded SQLite store under out/ (LABELGATE_HOME).
demo: install
	mkdir -p $(OUT)
	LABELGATE_HOME=$(abspath $(OUT))/home $(VENV)/bin/labelgate report \
	  --gt examples/cvat/gt.xml --ds examples/cvat/annotator1.xml \
	  --ds examples/cvat/annotator2.xml --ds examples/cvat/annotator3.xml \
	  --policy examples/gate.toml --html $(OUT)/report.html --json $(OUT)/report.json
	$(VENV)/bin/labelgate compare --gt examples/cvat/gt.xml --ds examples/cvat/predictions.xml \
	  --json $(OUT)/report-predictions.json
	@echo "open $(OUT)/report.html in a browser"

test: install $(LS_VENV)/.installed services
	LABELGATE_LS_SERVER_PYTHON=$(abspath $(LS_VENV))/bin/python $(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check src adapters webhook_app tests examples bench
	$(VENV)/bin/ruff format --check src adapters webhook_app tests examples bench
	$(VENV)/bin/mypy

# Every script always runs; the target fails if any misses a speed target.
bench: install $(LS_VENV)/.installed
	@status=0; \
	$(PY) bench/e2e.py || status=1; \
	$(PY) bench/compare.py || status=1; \
	$(PY) bench/readers.py || status=1; \
	$(PY) bench/agreement.py || status=1; \
	$(PY) bench/webhook.py || status=1; \
	$(PY) bench/webhook.py --backend redis || status=1; \
	$(PY) bench/dashboard.py || status=1; \
	LABELGATE_LS_SERVER_PYTHON=$(abspath $(LS_VENV))/bin/python $(PY) bench/ls_pushback.py || status=1; \
	LABELGATE_LS_SERVER_PYTHON=$(abspath $(LS_VENV))/bin/python $(PY) bench/pulls.py || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) $(LS_VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache
