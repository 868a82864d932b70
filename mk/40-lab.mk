# The lab: disposable Podman hosts (bullseye 3.0, bookworm 4.3, trixie 5.4, sid 5.8, podman6 6.1.1) for integration tests.
# Root filesystems are cached under $(LAB_CACHE)/rootfs, keyed by recipe (see tests/lab/rootfs.py).
LABCTL      := $(PYTHON) tests/lab/labctl
LAB_SUITES  ?= bullseye bookworm trixie sid podman6
SUITE       ?= sid

.PHONY: lab-build lab-repos lab-down lab-reap lab-shell test-lab lab-baseline-long test-userland-image

# Cold: about a minute per suite, one suite at a time (the machine has 2 cores).
lab-build:
	@for s in $(LAB_SUITES); do $(LABCTL) build $$s || exit 1; done

# The lab's package repositories (tests/lab/repo.py): cold 10-70 s each, from the Debian mirror.
lab-repos:
	$(LABCTL) repo

# Ends EVERY lab host on this machine, also those of other people's runs.
lab-down:
	$(LABCTL) down --all

# Ends only hosts whose test run died without tearing them down.
lab-reap:
	$(LABCTL) reap

lab-shell:
	@name=shell-$(SUITE)-$$$$; $(LABCTL) up $$name --suite $(SUITE) >/dev/null && \
	  { $(LABCTL) exec $$name -- /bin/bash -l; $(LABCTL) down $$name; }

# The baseline table (issue 2 part 5) and the lab's self-tests.
test-lab: deps
	$(VPY) -m pytest -p no:cacheprovider -s -v tests/integration/test_baseline.py \
	  $(wildcard tests/integration/test_lab_*.py)

# More maps and a bigger image than `make test` uses.
lab-baseline-long: deps
	BASELINE_MAPS=10 BASELINE_FILES=1000 $(VPY) -m pytest -p no:cacheprovider -s -v tests/integration/test_baseline.py

# The seed-size real-userland image (tests/lab/userland_image.py, ~170 MB, cached under
# $(LAB_CACHE)/images) on every lab Podman: imported whole, and what a copy for a
# non-contiguous map keeps of it. Not part of `make test` (about 80 s, mostly import and copy I/O);
# the benches use this image.
test-userland-image: deps
	$(VPY) -m pytest -p no:cacheprovider -s -v tests/integration/test_userland_image.py

TEST_TARGETS += test-lab
