# idmapguard.storage: the two commands an operator needs are `make demo` and `make test`.
# Every area of the project adds its own targets in mk/<area>.mk; this file holds what they
# share: Debian packages, the Python virtual environment, and the collection path.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON      ?= /usr/bin/python3
VENV        := $(CURDIR)/.venv
VPY         := $(VENV)/bin/python
BUILD       := $(CURDIR)/.build
# Ansible finds the collection through a symlink named like its FQCN.
COLL_ROOT   := $(BUILD)/collections
COLL_LINK   := $(COLL_ROOT)/ansible_collections/idmapguard/storage
# Expensive lab artefacts (root filesystems, kernels) live outside the repo, keyed by recipe.
LAB_CACHE   ?= /var/cache/idmapguard-lab
export LAB_CACHE
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export PYTHONPATH := $(COLL_ROOT)$(if $(PYTHONPATH),:$(PYTHONPATH))
export ANSIBLE_PYTHON_INTERPRETER := /usr/bin/python3
export ANSIBLE_NOCOLOR := 1
export PYTHONDONTWRITEBYTECODE := 1

# Filled in by mk/*.mk, run in this order by `make test`.
TEST_TARGETS :=

.PHONY: help deps venv collection-link test demo build clean

help:
	@echo "make demo   reproduce inode exhaustion on a lab host and fix it with the collection"
	@echo "make test   the whole suite: unit, sanity, lint, galaxy-importer, native, integration, EE, molecule, docs"

$(BUILD)/.debian-deps: scripts/install-debian-deps.sh $(wildcard requirements/debian-*.txt)
	@mkdir -p $(BUILD)
	scripts/install-debian-deps.sh
	@touch $@

# Each area lists its pinned Python packages in requirements/<area>.txt.
PY_REQS := $(sort $(wildcard requirements/*.txt))
PY_REQS := $(filter-out requirements/debian-%,$(PY_REQS))

# Never in the test venv, also when an older requirements file put them there: the full
# "ansible" package (its bundled collections hide what ansible-core lacks) and the tools that
# pull it in. They have venvs of their own (requirements/tools/).
NOT_IN_VENV := ansible molecule molecule-plugins ansible-compat ansible-lint

$(VENV)/.installed: $(PY_REQS) $(BUILD)/.debian-deps
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q $(addprefix -r ,$(PY_REQS))
	@for p in $(NOT_IN_VENV); do ! $(VPY) -m pip show -q $$p 2>/dev/null || $(VPY) -m pip uninstall -q -y $$p; done
	@touch $@

venv: $(VENV)/.installed

$(COLL_LINK):
	@mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

collection-link: $(COLL_LINK)

deps: $(BUILD)/.debian-deps venv collection-link

include $(sort $(wildcard mk/*.mk))

test: deps
	@scripts/run-tests.sh $(TEST_TARGETS)

build: deps
	ansible-galaxy collection build --force --output-path $(BUILD)/dist .

clean:
	rm -rf $(BUILD) tests/output native/build
