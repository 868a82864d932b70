# Publishing checks with the ecosystem's own tools, in their own venv (galaxy-importer pins
# packages the test venv must not take; ansible-core is the same pinned version):
#   test-lint            ansible-lint --profile production on the whole tree (.ansible-lint)
#   test-galaxy-importer galaxy-importer (Galaxy's upload checks) on the built tarball
TOOLS_VENV := $(BUILD)/tools-venv
TOOLS_REQS := requirements/tools/galaxy-lint.txt
GALAXY_IMPORTER_DIR := $(BUILD)/galaxy-importer

.PHONY: tools-venv test-lint test-galaxy-importer

$(TOOLS_VENV)/.installed: $(TOOLS_REQS) $(BUILD)/.debian-deps
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q -r $(TOOLS_REQS)
	@touch $@

tools-venv: $(TOOLS_VENV)/.installed

# HOME of its own: ansible-lint searches ~/.ansible/collections before the collection path, and
# a copy of this collection installed there (galaxy-importer, an operator's install) would be
# linted instead of the work tree.
test-lint: deps tools-venv
	@mkdir -p $(BUILD)/lint-home
	HOME=$(BUILD)/lint-home PATH=$(TOOLS_VENV)/bin:$$PATH ansible-lint --nocolor

# ansible-test inside galaxy-importer stays off (its default: make test-sanity runs it); the
# import fails on any ERROR line, and prints its last lines.
test-galaxy-importer: deps tools-venv
	@rm -rf $(GALAXY_IMPORTER_DIR) && mkdir -p $(GALAXY_IMPORTER_DIR)
	ansible-galaxy collection build --output-path $(GALAXY_IMPORTER_DIR) . >/dev/null
	@set -o pipefail; cd $(GALAXY_IMPORTER_DIR) && \
	  PATH=$(TOOLS_VENV)/bin:$$PATH GALAXY_IMPORTER_RUN_ANSIBLE_TEST=false \
	  python -m galaxy_importer.main idmapguard-storage-*.tar.gz 2>&1 | grep -v '^Loading ' | tee importer.log
	@! grep -E '^ERROR' $(GALAXY_IMPORTER_DIR)/importer.log
	@grep -q '^Importer processing completed successfully' $(GALAXY_IMPORTER_DIR)/importer.log

TEST_TARGETS += test-lint test-galaxy-importer
