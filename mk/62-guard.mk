# The copy-cache guard (plugins/module_utils/copy_cache_guard/, installed by roles/remediate).
# Integration tests drive real Podman on lab hosts (bookworm 4.3, trixie 5.4, sid 5.8 + fuse-overlayfs).
GUARD_PYTEST := cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -rA

.PHONY: test-guard test-guard-systemd test-rollout-systemd bench-guard-soak

# What `make test` runs (~4 min warm): the watch-mode guard evicting as hard as it can against
# create/rm/run loops on every lab Podman, and the LRU budget / keep_maps on a real store.
test-guard: deps
	$(GUARD_PYTEST) tests/integration/test_guard.py tests/integration/test_guard_restart.py

# The soak of issues 10 and 18: bullseye 3.0, bookworm 4.3 and trixie 5.4, 10 minutes each
# (SOAK_SECONDS to shorten), the seed-size real-userland image, one new map per second (or as
# fast as Podman copies; the rate is printed), role defaults vs the old timer in the same run.
# Peak cache from the guard's own state. BENCH_SOAK_ARGS="--parallel" soaks the suites at once.
# Not part of `make test` (about 35 min one suite after another).
bench-guard-soak: deps
	cd $(CURDIR) && python tests/bench/bench_guard_soak.py --seconds $${SOAK_SECONDS:-600} $(BENCH_SOAK_ARGS)

TEST_TARGETS += test-guard

# The guard as deployed: the role's unit under the suite's own systemd (lab hosts with
# --init systemd) on bookworm and trixie: enabled/active, restart after SIGKILL, staging of a
# killed eviction finished at start-up, journal lines, stop mid-eviction, reboot (~6 min warm).
test-guard-systemd: deps
	$(GUARD_PYTEST) tests/integration/test_guard_systemd.py

TEST_TARGETS += test-guard-systemd

# Protection by default on a host whose PID 1 is systemd: the rollout with no variables enables
# and starts the guard on bookworm (4.3, copies), its report shows the running pid, a second run
# leaves it alone (same MainPID); sid (5.8, shares) gets none.
test-rollout-systemd: deps
	$(GUARD_PYTEST) -s tests/integration/test_rollout_systemd.py

TEST_TARGETS += test-rollout-systemd
