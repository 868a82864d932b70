# Fleet rollout: the AWX execution environment's build context, the rollout on lab hosts over
# SSH, molecule in containers, and the rollout benchmark.
EE_DIR := $(BUILD)/ee
MOLECULE_DIR := $(CURDIR)/extensions/molecule

.PHONY: ee-context test-ee test-rollout test-molecule bench-rollout report-screenshot

# ansible-builder create: the build context of the execution environment, with the collection
# tarball in it. Building the image needs a registry for the base image (not done here).
ee-context: deps
	@rm -rf $(EE_DIR) && mkdir -p $(EE_DIR)
	ansible-galaxy collection build --force --output-path $(EE_DIR) . >/dev/null
	mv $(EE_DIR)/idmapguard-storage-*.tar.gz $(EE_DIR)/idmapguard-storage.tar.gz
	ansible-builder create -f execution-environment.yml -c $(EE_DIR)/context >/dev/null
	@echo "ee-context: $(EE_DIR)/context"

test-ee: ee-context
	grep -q 'ansible-core==2.19.14' $(EE_DIR)/context/Containerfile
	test -s $(EE_DIR)/context/_build/collections/idmapguard-storage.tar.gz
	grep -q '/build/collections/idmapguard-storage.tar.gz' $(EE_DIR)/context/_build/requirements.yml
	tar -tzf $(EE_DIR)/context/_build/collections/idmapguard-storage.tar.gz | grep -q '^meta/execution-environment.yml$$'
	tar -tzf $(EE_DIR)/context/_build/collections/idmapguard-storage.tar.gz | grep -q '^playbooks/rollout.yml$$'

# The rollout on lab hosts (bookworm, trixie, sid, sid with fuse-overlayfs) over SSH.
test-rollout: deps test-ee
	python -m pytest -q -p no:cacheprovider -s tests/integration/test_rollout.py

# molecule test (create, prepare, converge, idempotence, verify, destroy) on a privileged
# container built from the lab's sid rootfs; molecule's Podman uses a private store.
test-molecule: deps
	@set -e; export MOLECULE_PODMAN_EXECUTABLE=$(MOLECULE_DIR)/podman-private; \
	  export IDMAPGUARD_MOLECULE_IMAGE=$$($(MOLECULE_DIR)/build-image sid); \
	  cd $(CURDIR) && NO_COLOR=1 molecule test --scenario-name default

# A converged re-run of the rollout against a bare play (ping + podman info), same lab hosts.
bench-rollout: deps
	python tests/bench/bench_rollout.py

# Headless screenshot of the fleet report (REPORT=path/to/fleet-report.html).
REPORT ?= $(CURDIR)/demo-output/report/fleet-report.html
report-screenshot:
	@command -v chromium >/dev/null || apt-get install -y -q --no-install-recommends chromium >/dev/null
	chromium --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run \
	  --window-size=1200,1400 --screenshot=$(basename $(REPORT)).png file://$(REPORT)
	@echo "screenshot: $(basename $(REPORT)).png"

TEST_TARGETS += test-rollout test-molecule
