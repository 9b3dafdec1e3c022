# Two commands on a fresh machine: `make demo` and `make test`. Everything else is plumbing for them.
# Installs come from the lock files in requirements/ (Airflow's constraints files cannot be fetched
# here); refresh them deliberately with `make lock`.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.9

VENV := .venv
VENV31 := .venv-airflow31
VENVSDK := .venv-zhipuai
LOCK := requirements/airflow-3.3.lock
LOCK31 := requirements/airflow-3.1.lock
LOCKSDK := requirements/zhipuai-sdk.lock
BOOT := .venv-boot

# pytest exits 5 when it ran no test: that is a broken suite, not a pass.
define run_pytest
	$(1)/bin/python -m pytest $(2); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests ($(2)): the suite is broken" >&2; exit 1; fi; \
	exit $$rc
endef

.PHONY: demo test lint unit install lock clean help

help:
	@echo "make demo   - install, start the local emulator + S3, run the product pipeline end to end"
	@echo "make test   - install, lint, run the whole suite (Airflow 3.3) and the unit tests on Airflow 3.1"
	@echo "make lock   - re-resolve requirements/*.lock (deliberately, when dependencies change)"

# A tiny bootstrap venv that only holds uv (pinned), so installs are fast and reproducible.
$(BOOT)/bin/uv:
	$(PYTHON) -m venv $(BOOT)
	$(BOOT)/bin/pip install -q uv==$(UV_VERSION)

$(VENV)/.installed: $(BOOT)/bin/uv pyproject.toml $(LOCK)
	rm -rf $(VENV) && $(BOOT)/bin/uv venv -q --python $(PYTHON) $(VENV)
	$(BOOT)/bin/uv pip install -q --python $(VENV)/bin/python -r $(LOCK)
	$(BOOT)/bin/uv pip install -q --python $(VENV)/bin/python --no-deps -e .
	touch $@

$(VENV31)/.installed: $(BOOT)/bin/uv pyproject.toml $(LOCK31)
	rm -rf $(VENV31) && $(BOOT)/bin/uv venv -q --python $(PYTHON) $(VENV31)
	$(BOOT)/bin/uv pip install -q --python $(VENV31)/bin/python -r $(LOCK31)
	$(BOOT)/bin/uv pip install -q --python $(VENV31)/bin/python --no-deps -e .
	touch $@

# The official zhipuai SDK pins PyJWT<2.9 (Airflow needs >=2.11): it lives in its own venv and the
# conformance tests drive it in a subprocess.
$(VENVSDK)/.installed: $(BOOT)/bin/uv $(LOCKSDK)
	rm -rf $(VENVSDK) && $(BOOT)/bin/uv venv -q --python $(PYTHON) $(VENVSDK)
	$(BOOT)/bin/uv pip install -q --python $(VENVSDK)/bin/python -r $(LOCKSDK)
	touch $@

install: $(VENV)/.installed

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint $(VENVSDK)/.installed $(VENV31)/.installed
	@echo "== whole suite on Airflow 3.3 =="
	COGVIDEO_SDK_PYTHON=$(CURDIR)/$(VENVSDK)/bin/python $(call run_pytest,$(VENV),-q -p no:cacheprovider tests)
	@echo "== unit tests on the Airflow 3.1 floor =="
	$(call run_pytest,$(VENV31),-q -p no:cacheprovider tests/unit)

demo: $(VENV)/.installed
	$(VENV)/bin/cogvideo demo

lock: $(BOOT)/bin/uv
	$(BOOT)/bin/uv pip compile -q --no-header pyproject.toml requirements/airflow-3.3.in --extra emulator \
		--extra local-s3 --extra test --python-version 3.11 -o $(LOCK)
	$(BOOT)/bin/uv pip compile -q --no-header pyproject.toml requirements/airflow-3.1.in --extra emulator \
		--extra local-s3 --extra test --python-version 3.11 -o $(LOCK31)
	$(BOOT)/bin/uv pip compile -q --no-header requirements/zhipuai-sdk.in --python-version 3.11 -o $(LOCKSDK)

clean:
	rm -rf $(VENV) $(VENV31) $(VENVSDK) $(BOOT) build dist *.egg-info .pytest_cache .ruff_cache
