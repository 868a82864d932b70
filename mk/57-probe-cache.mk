# issue 15: a stale negative probe answer cached by containers/storage, on a sid lab host:
# verify -> rollout (configure removes it, the proof shows no copy) -> a new map costs no copy.
# Verdict table and plan tests run in test-unit.
.PHONY: test-probe-cache
test-probe-cache: deps
	$(MAKE) -C native
	cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -rs -s tests/integration/test_probe_cache.py

TEST_TARGETS += test-probe-cache
