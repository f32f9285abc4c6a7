# make demo: set up and run the main job on the embedded defaults.  make test: set up and run the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Debian packages the environments and tests need (bubblewrap sandbox, MariaDB server backend; a C/C++ toolchain
# and cmake because llama-cpp-python, the local model server, and alfworld's fast-downward planner build from
# source; chromium for the webshop browser tests, as Playwright cannot download its own browser here).
APT_PACKAGES := bubblewrap mariadb-server build-essential cmake chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps demo test test-fast clean

setup: system-deps $(VENV)/.installed

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# torch goes first, pinned: the CPU build lies on disk, and an unpinned torch pulls several GB of CUDA wheels.
# alfworld's fast-downward builds from source by running `python build.py`: the venv's python must come first on
# PATH, or another interpreter on the machine runs it and the build fails.
$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PIP) install -q -e ".[test,ray,eval]"
	touch $@

demo: setup
	$(VENV)/bin/agentinstruct demo --out demo-out

test: setup
	$(VENV)/bin/python -m pytest -q

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) demo-out .pytest_cache
