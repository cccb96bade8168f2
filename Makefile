# Flash Station — set-up, tests and tools.
# `make demo` and `make test` work as root on a fresh Debian 12/13: they install
# their own apt packages (when run as root with apt-get) and a venv in .venv.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
HOST_PYTHON ?= $(shell command -v /usr/bin/python3 || command -v python3)
APT_PACKAGES := python3 python3-venv python3-dev gcc pkg-config libsystemd-dev \
	mtools dosfstools 7zip ffmpeg libimage-exiftool-perl fonts-unifont udev util-linux \
	shellcheck fdisk e2fsprogs
PYTEST_ARGS ?= -n 2

.PHONY: all deps apt venv test lint pytest test-slow demo bench format clean image

all: test

apt: .stamp-apt
.stamp-apt:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing apt packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	else echo "not root or no apt-get: assuming system packages are present ($(APT_PACKAGES))"; fi
	@touch $@

venv: $(VENV)/.stamp
$(VENV)/.stamp: pyproject.toml .stamp-apt
	$(HOST_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,systemd]'
	@touch $@

deps: venv

lint: venv
	$(VENV)/bin/ruff check appliance tests
	$(VENV)/bin/ruff format --check appliance tests
	$(VENV)/bin/mypy

pytest: venv
	$(PY) -m pytest $(PYTEST_ARGS) -m "not slow"

test: lint pytest

test-slow: venv
	$(PY) -m pytest $(PYTEST_ARGS) -m slow

format: venv
	$(VENV)/bin/ruff format appliance tests
	$(VENV)/bin/ruff check --fix appliance tests

demo: venv
	$(VENV)/bin/flashstation demo

# Benchmarks (not part of `make test`): every bench/bench_*.py, each printing ratios
# against baselines measured in the same run.
bench: venv
	@set -e; for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f; done

# The SD-card image (not part of `make test`): needs root and a pi-gen checkout,
# e.g. `sudo make image PIGEN=$$HOME/pi-gen`. See image-build/README.md.
image:
	PIGEN="$(PIGEN)" image-build/build.sh image

clean:
	rm -rf $(VENV) .stamp-apt .pytest_cache .mypy_cache .ruff_cache build *.egg-info
