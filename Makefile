# virthooks.libvirt: the two entry points of the README.
#   make demo   deploy to a local sandbox fleet and fire simulated guest events (embedded default)
#   make test   install everything needed from nothing and run the whole test suite
#   make soak   the chaos soak on a private real libvirtd (SOAK_MINUTES=30, SOAK_CALLS=0, SOAK_SEED=random)
#   make lock   regenerate requirements/*.txt (every Python package, pinned with hashes) from pyproject.toml
SHELL := /bin/bash
PYTHON ?= python3
# Both venvs are installed from the locks in requirements/ and nothing else (--require-hashes, --no-deps):
# .venv-demo holds what the demo runs (ansible-core), .venv everything the tests run. A venv whose lock
# changed is built again from scratch, so it never keeps a package the lock no longer has.
VENV := .venv
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.lock-$(shell cat requirements/pip.txt requirements/test.txt | sha256sum | cut -c1-16)
DEMO_VENV := .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.lock-$(shell cat requirements/pip.txt requirements/demo.txt | sha256sum | cut -c1-16)
PIP_INSTALL = -m pip install -q --disable-pip-version-check --require-hashes --no-deps --only-binary=:all:
# make lock: uv (itself installed from requirements/lock-tools.txt) compiles the declared dependency groups.
# Pins already in a lock are kept; `make lock UPGRADE=1` moves every package to its newest allowed version.
LOCK_VENV := .cache/lock-tools
UV_COMPILE = UV_CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/uv pip compile --quiet --generate-hashes \
	--python-version 3.11 $(if $(UPGRADE),--upgrade)

LINK := tests/output/collections/ansible_collections/virthooks/libvirt
ANSIBLE_ENV := ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/tests/output/collections:$(CURDIR)/.cache/collections \
	ANSIBLE_CONFIG=$(CURDIR)/tests/ansible.cfg

.PHONY: venv demo-venv demo test units lint sanity bench soak clean link lock

venv: $(VENV_STAMP)
demo-venv: $(DEMO_STAMP)

# $(call locked_venv,DIR,LOCK): DIR made anew with pip from requirements/pip.txt, then LOCK, nothing else
# (the interpreter's bundled setuptools goes too: a package the lock needs comes from the lock).
define locked_venv
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "make: python3-venv is missing, installing it with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/python $(PIP_INSTALL) -r requirements/pip.txt
	$(1)/bin/python -m pip uninstall -q -y setuptools 2>/dev/null || true
	$(1)/bin/python $(PIP_INSTALL) -r $(2)
endef

$(VENV_STAMP): requirements/pip.txt requirements/test.txt
	$(call locked_venv,$(VENV),requirements/test.txt)
	@touch $@

$(DEMO_STAMP): requirements/pip.txt requirements/demo.txt
	$(call locked_venv,$(DEMO_VENV),requirements/demo.txt)
	@touch $@

lock:
	@test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	@$(LOCK_VENV)/bin/python $(PIP_INSTALL) -r requirements/lock-tools.txt
	$(UV_COMPILE) requirements/pip.in -o requirements/pip.txt
	$(UV_COMPILE) requirements/lock-tools.in -o requirements/lock-tools.txt
	$(UV_COMPILE) --group pyproject.toml:test -o requirements/test.txt
	# The demo's lock takes its versions from the test lock: the demo runs exactly what the tests ran.
	$(UV_COMPILE) --group pyproject.toml:demo -c requirements/test.txt -o requirements/demo.txt

# The repository is the collection: expose it as ansible_collections/virthooks/libvirt.
link:
	@mkdir -p $(dir $(LINK)) && test -L $(LINK) || ln -sfn ../../../../.. $(LINK)

demo: demo-venv link
	$(ANSIBLE_ENV) $(DEMO_VENV)/bin/ansible-playbook -i examples/inventory/sandbox.yml examples/sandbox/demo.yml

# The unit tier: tests/unit without the tests that need root, libvirt, podman or minutes (markers in
# tests/conftest.py); runs as any user, in about a minute on 2 cores.
UNIT_TIER := not (root or libvirt or podman or slow or quality)
units: venv
	$(VENV_PY) -m pytest -p no:cacheprovider -m "$(UNIT_TIER)" tests/unit

# Quick local loops: the quality gates' lint and sanity tests alone (tests/quality runs the same tools,
# with the same options, on a copy of the files git would ship; see tests/quality/README.md).
lint: venv
	$(VENV_PY) -m pytest tests/quality -k 'ansible_lint or yamllint or ruff'

sanity: venv
	$(VENV_PY) -m pytest tests/quality -k 'ansible_test_sanity or sanity_ignore'

test: venv
	tests/setup/prepare-host.sh
	$(VENV_PY) -m pytest

# Every benchmark runs; make fails at the end if one missed its target (BENCH_FLAGS=--report-only: never).
bench: venv link
	@rc=0; \
	$(VENV_PY) benchmarks/dispatch.py $(BENCH_FLAGS) || rc=1; \
	$(VENV_PY) benchmarks/libvirt_cycles.py $(BENCH_FLAGS) || rc=1; \
	$(VENV_PY) benchmarks/fleet.py || rc=1; \
	exit $$rc

# The long chaos soak (docs/testing.md, "The chaos soak"): prints its figures, fails if a failure is ours.
# It stops at SOAK_MINUTES, or earlier once SOAK_CALLS hook calls ran (0: no such limit).
SOAK_MINUTES ?= 30
SOAK_CALLS ?= 0
SOAK_SEED ?=
soak: venv link
	$(VENV_PY) -m tests.soak.engine --minutes $(SOAK_MINUTES) --calls $(SOAK_CALLS) $(if $(SOAK_SEED),--seed $(SOAK_SEED))

clean:
	rm -rf $(VENV) $(DEMO_VENV) .pytest_cache tests/output

# make docs: the collection's HTML reference (modules, roles, filters) built by antsibull-docs and Sphinx
# (both from the test lock; theme: Sphinx's own alabaster) into build/docs/html/index.html. The guides are
# README.md and docs/*.md. docs-html has no prerequisites: tests/quality runs it with its own venv and copy
# of the collection. Links into Ansible's own documentation cannot resolve offline (suppress ref.ref);
# any other Sphinx warning fails the build.
DOCS_DIR ?= build/docs
DOCS_BIN ?= $(CURDIR)/$(VENV)/bin
DOCS_COLLECTIONS ?= $(CURDIR)/tests/output/collections
DOCS_ENV = PATH=$(DOCS_BIN):$$PATH ANSIBLE_COLLECTIONS_PATH=$(DOCS_COLLECTIONS)

.PHONY: docs docs-html
docs: venv link
	@$(MAKE) --no-print-directory docs-html

docs-html:
	rm -rf $(DOCS_DIR) && mkdir -p $(DOCS_DIR) && chmod 700 $(DOCS_DIR)
	$(DOCS_ENV) antsibull-docs sphinx-init --use-current \
	  --dest-dir $(DOCS_DIR) virthooks.libvirt >/dev/null
	$(DOCS_ENV) antsibull-docs --config-file $(DOCS_DIR)/antsibull-docs.cfg \
	  collection --use-current --dest-dir $(DOCS_DIR)/rst virthooks.libvirt
	$(DOCS_ENV) sphinx-build -C -q -b html -W --keep-going -D extensions=sphinx_antsibull_ext \
	  -D project=virthooks.libvirt -D html_theme=alabaster -D pygments_style=ansible \
	  -D highlight_language=YAML+Jinja -D suppress_warnings=ref.ref $(DOCS_DIR)/rst $(DOCS_DIR)/html
	@echo "docs: $(DOCS_DIR)/html/index.html"
