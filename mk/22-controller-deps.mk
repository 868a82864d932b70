# The controller of the integration tests is an operator's: ansible-core plus the collections
# galaxy.yml declares (test_controller_deps.py; a few seconds).
.PHONY: test-controller-deps
test-controller-deps: deps
	cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -rA tests/integration/test_controller_deps.py

TEST_TARGETS += test-controller-deps
