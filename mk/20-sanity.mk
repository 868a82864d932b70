# ansible-test sanity cannot use docker here: it runs in virtual environments it makes itself
# (--venv --requirements), from a copy of the collection at a path ending in
# ansible_collections/idmapguard/storage.
SANITY_ROOT := $(BUILD)/sanity/ansible_collections/idmapguard/storage
ANSIBLE_TEST_CACHE := $(HOME)/.ansible/test/cache
SANITY_PYTHON ?= 3.11

.PHONY: sanity-tree sanity-getpip test-sanity test-build

# The files git tracks plus new ones it does not ignore, as they are in the work tree.
sanity-tree: deps
	@rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_ROOT)
	@git ls-files -z --cached --others --exclude-standard \
	  | (cd $(CURDIR) && xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"') \
	  | rsync -a --files-from=- ./ $(SANITY_ROOT)/
	@cd $(SANITY_ROOT) && git init -q && git add -A >/dev/null

# Every pip version this ansible-test may bootstrap gets the offline stand-in.
sanity-getpip: deps
	@mkdir -p $(ANSIBLE_TEST_CACHE)
	@for v in $$(grep -ho "pip='[0-9.]*'" $(VENV)/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | tr -dc "0-9.\n" | sort -u); do \
	  install -m 0644 scripts/get_pip_standin.py $(ANSIBLE_TEST_CACHE)/get_pip_$${v//./_}.py; done

test-sanity: sanity-tree sanity-getpip
	cd $(SANITY_ROOT) && ansible-test sanity --venv --requirements --python $(SANITY_PYTHON) --color no

# ansible-galaxy collection build produces a tarball that installs.
test-build: deps
	rm -rf $(BUILD)/dist $(BUILD)/install && mkdir -p $(BUILD)/dist $(BUILD)/install
	ansible-galaxy collection build --output-path $(BUILD)/dist .
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/install ansible-galaxy collection install --offline --force \
	  -p $(BUILD)/install $(BUILD)/dist/idmapguard-storage-*.tar.gz
	test -f $(BUILD)/install/ansible_collections/idmapguard/storage/MANIFEST.json
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/install ansible-doc idmapguard.storage.mapped_layers >/dev/null
	@# nothing from outside the collection content went into the tarball
	! tar -tzf $(BUILD)/dist/idmapguard-storage-*.tar.gz | grep -E '^(\.build|\.venv|\.ci|\.git|native/build|tests/output|mk|scripts)/'

TEST_TARGETS += test-build test-sanity
