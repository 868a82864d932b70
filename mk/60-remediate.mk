# remediate: the store library, the mapped_layers module, the remediate role and guard.
# Integration tests drive real Podman on lab hosts (bullseye 3.0, bookworm 4.3, trixie 5.4, sid 5.8).
REMEDIATE_PYTEST := cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -rA

.PHONY: test-remediate test-remediate-full bench-prune

# What `make test` runs: prune on randomized stores of the three Podman versions, tampered
# metadata, zero-inode recovery, 3 kill -9 trials, create/rm loop during a prune, the role.
test-remediate: deps
	$(REMEDIATE_PYTEST) tests/integration/test_remediate.py tests/integration/test_remediate_kill.py \
	  tests/integration/test_remediate_role.py

# The full proof: 30 kill -9 trials (REMEDIATE_KILL_TRIALS to change, REMEDIATE_SEED to replay).
test-remediate-full: deps
	REMEDIATE_KILL_TRIALS=$${REMEDIATE_KILL_TRIALS:-30} $(REMEDIATE_PYTEST) tests/integration/test_remediate.py \
	  tests/integration/test_remediate_kill.py tests/integration/test_remediate_role.py

# Prune of 100 copies of a 2,000-file image vs rm -rf of the same dirs; prints the ratio.
bench-prune: deps
	cd $(CURDIR) && python tests/bench/bench_prune.py

TEST_TARGETS += test-remediate
