# Two commands on a fresh machine: `make demo` and `make test`. Everything else is plumbing for them.
# Installs come from the lock files in requirements/ (Airflow's constraints files cannot be fetched
# here); refresh them deliberately with `make lock`.
SHELL := /bin/bash
UV_VERSION := 0.13.9
# Never let uv fetch an interpreter of its own (no network for that here): use the machine's.
export UV_PYTHON_DOWNLOADS := never

# Interpreters by minor version: pyenv's build when there is one, else pythonX.Y on PATH.
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
python_for = $(or $(lastword $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python$(1))),$(shell command -v python$(1)))

# The test matrix, in one place. An entry is <input>-py<python>: venv .venv-<entry> (the whole suite's
# is .venv), lock requirements/<entry>.lock, resolved from pyproject.toml's extras plus
#   airflow-3.X : requirements/airflow-3.X.in (Airflow pinned; newest of everything else),
#   lowest      : uv's lowest-direct resolution (the declared lower bounds), under the caps of
#                 requirements/lowest-constraints.txt (what the oldest Airflow needs of the rest).
# Every supported Python (3.10-3.13) and Airflow minor (3.1-3.3) is in it, each unit entry differing
# from the others in both; the unit tests take ~90 CPU-seconds per entry, so the list is kept to what
# adds coverage (add an entry and run `make lock` to widen it).
SUITE := airflow-3.3-py3.11
UNIT_MATRIX := \
	airflow-3.2-py3.12 \
	airflow-3.3-py3.13 \
	lowest-py3.10
# Extra pytest arguments for one entry, PYTEST_ARGS_<entry>. On the lowest Airflow (3.1.3 to 3.1.5)
# the task SDK itself imports fastapi, so starlette, whatever imports it: the layering test's
# "no web server at parse time" check would measure Airflow, not the provider (it runs everywhere else).
PYTEST_ARGS_lowest-py3.10 := --deselect tests/unit/test_layering.py::test_runtime_import_loads_no_tooling_or_heavy_libraries
# How many unit-test venvs install and run at once (2 cores).
UNIT_JOBS ?= 2

input_of = $(firstword $(subst -py, ,$(1)))
pyver_of = $(lastword $(subst -py, ,$(1)))
lock_of = requirements/$(1).lock
EXTRAS := --extra amazon --extra images --extra emulator --extra heif --extra local-s3 --extra test
# What the whole suite needs beyond the extras (the distributed and browser tests).
SUITE_EXTRA_IN := requirements/system-tests.in
lock_args = $(if $(filter lowest,$(call input_of,$(1))),--resolution lowest-direct -c requirements/lowest-constraints.txt,requirements/$(call input_of,$(1)).in) \
	$(if $(filter $(SUITE),$(1)),$(SUITE_EXTRA_IN))

PYTHON := $(call python_for,$(call pyver_of,$(SUITE)))
VENV := .venv
LOCK := $(call lock_of,$(SUITE))
VENVSDK := .venv-zhipuai
LOCKSDK := requirements/zhipuai-sdk.lock
BOOT := .venv-boot
UV := $(BOOT)/bin/uv

# pytest exits 5 when it ran no test: that is a broken suite, not a pass.
# $(call run_pytest,VENV,PYTEST ARGS,LABEL[,ENV ASSIGNMENTS])
define run_pytest
	@echo "== $(3) =="; start=$$SECONDS; \
	$(4) $(1)/bin/python -m pytest $(2); rc=$$?; \
	echo "== $(3): exit $$rc in $$((SECONDS - start)) s =="; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests ($(2)): the suite is broken" >&2; exit 1; fi; \
	exit $$rc
endef

# Create venv $(1) on Python $(2) from lock $(3), then the provider itself (editable, no deps).
define make_venv
	@py="$(call python_for,$(2))"; if [ -z "$$py" ]; then \
		echo "ERROR: no Python $(2) (looked in $(PYENV_ROOT)/versions/$(2).* and for python$(2) on PATH)" >&2; exit 1; fi; \
	echo "== $(1): Python $(2) ($$py), $(3) =="; \
	rm -rf $(1) && $(UV) venv -q --python "$$py" $(1) && \
	$(UV) pip install -q --python $(1)/bin/python -r $(3) && \
	$(UV) pip install -q --python $(1)/bin/python --no-deps -e .
	touch $(1)/.installed
endef

UNIT_TARGETS := $(addprefix unit-,$(UNIT_MATRIX))
UNIT_VENVS := $(foreach e,$(UNIT_MATRIX),.venv-$(e)/.installed)
LOCK_TARGETS := $(addprefix lock-,$(SUITE) $(UNIT_MATRIX))
.PHONY: demo test lint suite unit install lock dist docs clean help system-deps $(UNIT_TARGETS) $(LOCK_TARGETS)

help:
	@echo "make demo        - install, start the local emulator + S3, run the product pipeline end to end"
	@echo "make test        - system packages, install, lint, the whole suite ($(SUITE)), the unit matrix"
	@echo "make unit        - the unit tests on every entry of the matrix: $(strip $(UNIT_MATRIX))"
	@echo "make unit-ENTRY  - the unit tests on one entry (e.g. make unit-airflow-3.3-py3.13)"
	@echo "make lock        - re-resolve requirements/*.lock (deliberately, when dependencies change)"
	@echo "make dist        - build the sdist and the wheel into dist/ and check them with twine"
	@echo "make docs        - rewrite the generated sections of README.md and docs/ (parameter tables, code tables)"
	@echo "make system-deps - apt-get install what the tests run for real (redis-server, chromium, postgresql) if missing"

# Debian packages the tests use for real: Redis and PostgreSQL (the distributed Airflow test) and
# Chromium (browser tests, driven by Playwright's Python package with executable_path). Installed
# only when missing, so a machine that has them never touches apt.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	pgbin="$$(pg_config --bindir 2>/dev/null)"; \
	if ! { command -v pg_ctl && command -v initdb; } >/dev/null 2>&1 \
		&& ! { [ -n "$$pgbin" ] && [ -x "$$pgbin/pg_ctl" ] && [ -x "$$pgbin/initdb" ]; }; then \
		missing="$$missing postgresql"; fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then \
		echo "ERROR: missing system packages:$$missing (install them, e.g. sudo apt-get install$$missing)" >&2; exit 1; fi; \
	echo "== apt-get install$$missing =="; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing fonts-liberation >/dev/null

# A tiny bootstrap venv that only holds uv (pinned), so installs are fast and reproducible.
$(UV):
	@if [ -z "$(PYTHON)" ]; then echo "ERROR: no Python $(call pyver_of,$(SUITE)) to bootstrap uv" >&2; exit 1; fi
	$(PYTHON) -m venv $(BOOT)
	$(BOOT)/bin/pip install -q uv==$(UV_VERSION)

$(VENV)/.installed: $(UV) pyproject.toml $(LOCK)
	$(call make_venv,$(VENV),$(call pyver_of,$(SUITE)),$(LOCK))

$(UNIT_VENVS): .venv-%/.installed: $(UV) pyproject.toml requirements/%.lock
	$(call make_venv,.venv-$*,$(call pyver_of,$*),requirements/$*.lock)

# The official zhipuai SDK pins PyJWT<2.9 (Airflow needs >=2.11): it lives in its own venv and the
# conformance tests drive it in a subprocess.
$(VENVSDK)/.installed: $(UV) $(LOCKSDK)
	rm -rf $(VENVSDK) && $(UV) venv -q --python $(PYTHON) $(VENVSDK)
	$(UV) pip install -q --python $(VENVSDK)/bin/python -r $(LOCKSDK)
	touch $@

install: $(VENV)/.installed

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The whole suite: everything but tests/unit on $(SUITE) and, beside it, tests/unit on every entry of
# the matrix, one venv at a time (each installs, then runs): the suite's integration tests spend much
# of their time waiting on renders and processes, which is when the matrix gets the second core.
# Each one's output is shown when it ends. Both always run; the build fails if either failed.
test: system-deps lint
	@start=$$SECONDS; rc=0; \
	$(MAKE) --no-print-directory -k -j2 --output-sync=recurse suite unit UNIT_JOBS=1 || rc=1; \
	echo "== make test: suite and unit matrix in $$((SECONDS - start)) s =="; \
	if [ $$rc -ne 0 ]; then echo "== make test: FAILED (see the suite / unit results above) ==" >&2; fi; exit $$rc

suite: $(VENV)/.installed $(VENVSDK)/.installed
	$(call run_pytest,$(VENV),-q -p no:cacheprovider --durations=15 tests --ignore=tests/unit,suite on $(SUITE) (tests/unit: the matrix),COGVIDEO_SDK_PYTHON=$(CURDIR)/$(VENVSDK)/bin/python COGVIDEO_UV=$(CURDIR)/$(UV))

unit: $(UV)
	@$(MAKE) --no-print-directory -k -j$(UNIT_JOBS) --output-sync=target $(UNIT_TARGETS)

$(UNIT_TARGETS): unit-%: .venv-%/.installed
	$(call run_pytest,.venv-$*,-q -p no:cacheprovider tests/unit $(PYTEST_ARGS_$*),unit tests on $*)

demo: $(VENV)/.installed
	$(VENV)/bin/cogvideo demo

# The generated sections of README.md and docs/ (parameter tables from the docstrings, the code's
# tables), rewritten in place; tests/unit/test_docs_pages.py fails while one is stale.
docs: $(VENV)/.installed
	$(VENV)/bin/python -m airflow_provider_cogvideo.docs --write

# A release: the sdist and the wheel (uv build, hatchling) in a fresh dist/, checked with twine
# (metadata, README rendering). tests/integration/test_dist.py installs such a wheel offline into a
# fresh virtualenv and imports it.
dist: $(VENV)/.installed
	rm -rf dist
	$(UV) build -q --out-dir dist
	$(VENV)/bin/python -m twine check --strict dist/*
	@ls -l dist

# An existing lock's pins are kept where they still resolve (uv prefers them): `make lock` after a
# change moves only what must move; delete a lock (or pass --upgrade by hand) to move everything.
lock: $(LOCK_TARGETS)
	$(UV) pip compile -q --no-header requirements/zhipuai-sdk.in --python-version $(call pyver_of,$(SUITE)) -o $(LOCKSDK)

$(LOCK_TARGETS): lock-%: $(UV)
	$(UV) pip compile -q --no-header pyproject.toml $(EXTRAS) $(strip $(call lock_args,$*)) \
		--python-version $(call pyver_of,$*) -o $(call lock_of,$*)

clean:
	rm -rf $(VENV) $(VENVSDK) $(addprefix .venv-,$(UNIT_MATRIX)) $(BOOT) build dist *.egg-info .pytest_cache .ruff_cache
