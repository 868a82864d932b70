# remediate: the store library, the mapped_layers module, the remediate role and guard.
# Integration tests drive real Podman on lab hosts (bullseye 3.0, bookworm 4.3, trixie 5.4, sid 5.8).
REMEDIATE_PYTEST := cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -rA
REMEDIATE_TESTS := tests/integration/test_remediate.py tests/integration/test_remediate_mounts.py \
  tests/integration/test_remediate_kill.py tests/integration/test_remediate_role.py \
  tests/integration/test_store_layouts.py tests/integration/test_remediate_integrity.py

.PHONY: test-remediate test-remediate-full test-remediate-integrity bench-prune bench-latency

# Store integrity alone (issue 22): immutable file, append-only dir, emptied/0-byte/truncated
# layers.json, missing top layer, stranded staging, cwd in a copy, a copy under two images;
# one host per suite that copies (bullseye, bookworm, trixie). Part of test-remediate.
test-remediate-integrity: deps
	$(REMEDIATE_PYTEST) tests/integration/test_remediate_integrity.py

# What `make test` runs: prune on randomized stores of the three Podman versions, tampered
# metadata, zero-inode recovery, mounts inside copies, 10 kill -9 trials (one per step kind),
# a create/rm/run loop against prunes on every lab Podman, the role, and the store's location
# whole on a transient store (trixie) and a split imagestore (sid).
test-remediate: deps
	$(REMEDIATE_PYTEST) $(REMEDIATE_TESTS)

# The full proof: 30 kill -9 trials (REMEDIATE_KILL_TRIALS to change, REMEDIATE_SEED to replay).
test-remediate-full: deps
	REMEDIATE_KILL_TRIALS=$${REMEDIATE_KILL_TRIALS:-30} $(REMEDIATE_PYTEST) -s $(REMEDIATE_TESTS)

# Prune of 50 copies of the seed-size userland image vs rm -rf of the same dirs (clones made
# with cp -a just before); prints the ratio (keep <= 1.2). Not part of `make test`.
bench-prune: deps
	cd $(CURDIR) && python tests/bench/bench_prune.py $(BENCH_PRUNE_ARGS)

# podman create latency during a prune of 50 copies of the seed-size userland image, vs idle
# windows interleaved in the same run; prints the ratios, median and max (goal <= 1.5)
# (BENCH_LATENCY_ARGS="--rounds 3 --report-copies 50"). Not part of `make test`.
bench-latency: deps
	cd $(CURDIR) && python tests/bench/bench_latency.py $(BENCH_LATENCY_ARGS)

TEST_TARGETS += test-remediate
