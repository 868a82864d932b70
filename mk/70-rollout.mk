# Fleet rollout: the rollout on lab hosts over SSH, molecule in containers, and the rollout benchmark.
MOLECULE_DIR := $(CURDIR)/extensions/molecule

.PHONY: test-rollout test-molecule test-molecule-systemd bench-rollout report-screenshot

# The rollout on lab hosts (bookworm, trixie, sid, sid and podman6 with fuse-overlayfs) over SSH.
test-rollout: deps
	python -m pytest -q -p no:cacheprovider -s tests/integration/test_rollout.py

# molecule runs from a venv of its own: its Podman driver needs containers.podman, from the full
# "ansible" package, which the test venv must not have (make test-controller-deps).
MOLECULE_VENV := $(BUILD)/molecule-venv
MOLECULE_REQS := requirements/tools/molecule.txt

$(MOLECULE_VENV)/.installed: $(MOLECULE_REQS) $(BUILD)/.debian-deps
	@test -x $(MOLECULE_VENV)/bin/python || $(PYTHON) -m venv $(MOLECULE_VENV)
	$(MOLECULE_VENV)/bin/python -m pip install -q -r $(MOLECULE_REQS)
	@touch $@

.PHONY: molecule-venv
molecule-venv: $(MOLECULE_VENV)/.installed

# molecule test (create, prepare, converge, idempotence, verify, destroy) on a privileged
# container built from the lab's sid rootfs; molecule's Podman uses a private store.
# ANSIBLE_HOME: molecule (ansible-compat) installs a copy of this collection into
# $ANSIBLE_HOME/collections, by default ~/.ansible, where ansible-lint would later find that
# stale copy before the work tree.
test-molecule: deps molecule-venv
	@set -e; export MOLECULE_PODMAN_EXECUTABLE=$(MOLECULE_DIR)/podman-private; \
	  export ANSIBLE_HOME=$(BUILD)/molecule-home; \
	  export IDMAPGUARD_MOLECULE_IMAGE=$$($(MOLECULE_DIR)/build-image sid); \
	  cd $(CURDIR) && NO_COLOR=1 PATH=$(MOLECULE_VENV)/bin:$$PATH molecule test --scenario-name default

# The guard's unit in a privileged container whose PID 1 is systemd (bookworm, Podman 4.3,
# which copies): the remediate role with the guard on, then systemctl says enabled and active.
test-molecule-systemd: deps molecule-venv
	@set -e; export MOLECULE_PODMAN_EXECUTABLE=$(MOLECULE_DIR)/podman-private; \
	  export ANSIBLE_HOME=$(BUILD)/molecule-home; \
	  export IDMAPGUARD_MOLECULE_IMAGE=$$($(MOLECULE_DIR)/build-image bookworm systemd); \
	  cd $(CURDIR) && NO_COLOR=1 PATH=$(MOLECULE_VENV)/bin:$$PATH molecule test --scenario-name systemd

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

TEST_TARGETS += test-rollout test-molecule test-molecule-systemd
