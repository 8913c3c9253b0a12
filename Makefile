# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Every pip call goes through constraints.txt, which pins the CPU build of torch.
INSTALL := $(PIP) install --disable-pip-version-check -q -c constraints.txt

.PHONY: run test test-reliability lint typecheck bench clean
# The browser tests drive Debian's Chromium, never a browser Playwright downloads.
CHROMIUM := /usr/bin/chromium

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-nodeps.txt constraints.txt \
    packages/fitboard-model/pyproject.toml packages/fitboard-example-plugin/pyproject.toml \
    clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(INSTALL) --upgrade pip
	$(INSTALL) -r requirements-dev.txt
	$(INSTALL) --no-deps -r requirements-nodeps.txt
	touch $@

run: $(VENV)/.installed
	$(PY) manage.py up

lint: $(VENV)/.installed
	$(PY) -m ruff check training webapp tests bench tools
	$(PY) -m mypy training webapp
	$(VENV)/bin/lint-imports
	$(PY) tools/inner_imports.py

# Runs only when $(CHROMIUM) is missing: installed from Debian's packages when we are root;
# otherwise stop and say the one command to run (the browser tests fail without it, never skip).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium && test -x $@; \
	else \
	  echo "make test needs Chromium at $@ for its browser tests. Run: sudo apt-get install -y chromium" >&2; \
	  exit 1; \
	fi

# Two pytest-xdist workers, a test file each at a time: the e2e files spend much of their time
# waiting on their stacks' processes. Each worker has its own database, scratch folder, channel
# and broker prefixes (tests/stack.py), so they share one Redis safely.
test: $(VENV)/.installed $(CHROMIUM) lint
	$(PY) -m pytest -n 2 --dist loadfile

# The reliability scorecard (docs/reliability.md): real workers SIGKILLed, Redis killed and restarted. Not in
# `make test` (minutes long); -s prints each measured figure (lines starting SCORECARD).
test-reliability: $(VENV)/.installed
	$(PY) -m pytest tests/reliability -s

bench: $(VENV)/.installed
	$(PY) bench/overhead.py
	$(PY) bench/live_latency.py
	$(PY) bench/scale.py
	$(PY) bench/workers.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
