# verify area (issue 6): idmap_support and the verify role on lab hosts, through Ansible over SSH.
# Unit tests (verdict table, podman_host, module) run in test-unit.
VERIFY_PYTEST := python -m pytest -q -p no:cacheprovider -rs

.PHONY: test-verify
test-verify: deps
	$(MAKE) -C native
	cd $(CURDIR) && $(VERIFY_PYTEST) tests/integration/test_verify.py tests/integration/test_verify_role.py \
	  tests/integration/test_effective_conf.py

TEST_TARGETS += test-verify
