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
# llama-cpp-python compiles llama.cpp for the building machine's CPU by default, AMX included where the CPU lists it,
# and its AMX matrix product crashed (SIGSEGV on any prompt of more than a few tokens) on a VM whose CPU lists AMX.
# So it is built for AVX2, which any x86-64 CPU of the last decade runs, and never from a wheel cached by an
# earlier, native build (pip's cache keys a wheel by its source, not by CMAKE_ARGS).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LLAMA_REQUIREMENT := $(shell grep -o 'llama-cpp-python\[server\][^ ]*' setup.cfg)
$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q --no-cache-dir "$(LLAMA_REQUIREMENT)"
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
