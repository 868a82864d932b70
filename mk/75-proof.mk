# The correctness proof (issue 14) on lab hosts: per lab Podman what each check finds, the
# rollout rolling back a host whose proof fails for real, and leftovers of a SIGKILLed canary.
# About a minute warm.
.PHONY: test-proof
test-proof: deps
	$(MAKE) -C native
	cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -rs -s tests/integration/test_proof.py

TEST_TARGETS += test-proof
