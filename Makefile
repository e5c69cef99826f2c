# virthooks.libvirt: the two entry points of the README.
#   make demo   deploy to a local sandbox fleet and fire simulated guest events (embedded default)
#   make test   install everything needed from nothing and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)

LINK := tests/output/collections/ansible_collections/virthooks/libvirt
ANSIBLE_ENV := ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/tests/output/collections:$(CURDIR)/.cache/collections \
	ANSIBLE_CONFIG=$(CURDIR)/tests/ansible.cfg

.PHONY: venv demo test units lint sanity bench clean link

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "make: python3-venv is missing, installing it with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	@test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install -q --disable-pip-version-check 'pip==26.3'
	$(VENV_PY) -m pip install -q --disable-pip-version-check --group test
	@rm -f $(VENV)/.installed-*; touch $@

# The repository is the collection: expose it as ansible_collections/virthooks/libvirt.
link:
	@mkdir -p $(dir $(LINK)) && test -L $(LINK) || ln -sfn ../../../../.. $(LINK)

demo: venv link
	$(ANSIBLE_ENV) $(VENV)/bin/ansible-playbook -i examples/inventory/sandbox.yml examples/sandbox/demo.yml

units: venv
	$(VENV_PY) -m pytest tests/unit

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

clean:
	rm -rf $(VENV) .pytest_cache tests/output
