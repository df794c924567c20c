# Developer and CI entry points. `make test` is the one command CI runs:
# it builds the virtualenv, installs the backing services and runs lint + tests
# against real PostgreSQL and Redis servers started by the test session.

ROOT   := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
VENV   := $(ROOT)/.venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIP_LOG := $(VENV)/pip-install.log
RUFF   := $(VENV)/bin/ruff
PYTHON ?= python3
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)
APT    := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

PYTEST_ARGS ?=

.PHONY: all venv services test lint demo bench clean

all: test

venv: $(STAMP)
	@:

# Re-install when the project metadata changes or a top-level package first appears
# (the editable install only maps packages that existed when it ran).
$(STAMP): $(ROOT)/pyproject.toml $(wildcard $(ROOT)/engine/__init__.py $(ROOT)/cli/__init__.py $(ROOT)/simulation/__init__.py $(ROOT)/workers/__init__.py $(ROOT)/api/__init__.py $(ROOT)/lab_feed/__init__.py)
	@$(PY) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV) >/dev/null 2>&1 || { \
			echo "venv: '$(PYTHON) -m venv' failed; installing python3-venv with apt-get"; \
			rm -rf $(VENV); \
			$(APT) update -qq >/dev/null && $(APT) install -y -qq python3-venv >/dev/null && \
			$(PYTHON) -m venv $(VENV); }; }
	@echo "venv: installing aih-pathways[dev] into $(VENV) (log: $(PIP_LOG))"
	@{ $(PY) -m pip install --disable-pip-version-check --upgrade pip && \
	   $(PY) -m pip install --disable-pip-version-check -e '$(ROOT)[dev]'; } >$(PIP_LOG) 2>&1 \
		|| { tail -n 40 $(PIP_LOG) >&2; echo "venv: pip install failed" >&2; exit 1; }
	@touch $@

services:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "services: installing redis-server with apt-get"; \
		$(APT) update -qq >/dev/null && $(APT) install -y -qq redis-server >/dev/null; \
	}
	@command -v redis-server >/dev/null 2>&1 || { echo "services: redis-server still not on PATH" >&2; exit 1; }
	@test -x /usr/bin/chromium || { \
		echo "services: installing chromium and chromium-driver with apt-get (browser tests)"; \
		$(APT) update -qq >/dev/null && $(APT) install -y -qq chromium chromium-driver >/dev/null; \
	}
	@test -x /usr/bin/chromium || { echo "services: /usr/bin/chromium still missing" >&2; exit 1; }
	@command -v dot >/dev/null 2>&1 || { \
		echo "services: installing graphviz with apt-get (pathway diagram layout)"; \
		$(APT) update -qq >/dev/null && $(APT) install -y -qq graphviz >/dev/null; \
	}
	@command -v dot >/dev/null 2>&1 || { echo "services: graphviz dot still not on PATH" >&2; exit 1; }

lint: venv
	@cd $(ROOT) && $(RUFF) check .

test: venv services
	@cd $(ROOT) && $(RUFF) check .
	@cd $(ROOT) && { $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
		if [ $$rc -eq 5 ]; then \
			echo "make test: FAILED - pytest collected no tests (exit code 5)" >&2; \
		fi; \
		exit $$rc; }

# make demo [PORT=8001] [REBUILD=1]: reuses var/demo.db once seeded unless REBUILD=1.
demo: venv
	@cd $(ROOT) && $(VENV)/bin/aihp demo $(if $(PORT),--port $(PORT)) $(if $(filter 1 yes true,$(REBUILD)),--rebuild)

bench: venv services
	@cd $(ROOT) && $(PY) -m bench

clean:
	rm -rf $(VENV) $(ROOT)/.pytest_cache $(ROOT)/.ruff_cache $(ROOT)/*.egg-info
	find $(ROOT) -name __pycache__ -type d -prune -exec rm -rf {} +
