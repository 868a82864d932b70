# The AWX execution environment: built offline with ansible-builder and Podman (private store,
# base image from the lab's cached bookworm root filesystem: scripts/ee-image), and used as AWX
# uses it: ansible-runner jobs inside the image as uid 1000 against lab hosts over SSH.
# A warm run builds nothing (the image tag is a hash of its inputs).
EE_DIR := $(BUILD)/ee

.PHONY: ee-image ee-context test-ee

ee-image: deps
	@scripts/ee-image > $(EE_DIR).image && echo "ee-image: $$(cat $(EE_DIR).image)"

# The build context only (ansible-builder create), e.g. to build for a registry elsewhere.
ee-context: deps
	@mkdir -p $(EE_DIR)
	ansible-galaxy collection build --force --output-path $(EE_DIR) . >/dev/null
	mv $(EE_DIR)/idmapguard-storage-*.tar.gz $(EE_DIR)/idmapguard-storage.tar.gz
	ansible-builder create -f execution-environment.yml -c $(EE_DIR)/context --output-filename Containerfile >/dev/null
	@echo "ee-context: $(EE_DIR)/context"

test-ee: ee-image
	IDMAPGUARD_EE_IMAGE=$$(cat $(EE_DIR).image) python -m pytest -q -p no:cacheprovider -rA tests/integration/test_ee.py

TEST_TARGETS += test-ee
