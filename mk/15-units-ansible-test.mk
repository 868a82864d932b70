# The unit tests once more, as ansible-test runs them (what Galaxy and Automation Hub users run):
# in a venv it makes itself (--venv --requirements, tests/unit/requirements.txt), from the copy of
# the collection at a path ending in ansible_collections/idmapguard/storage (mk/20-sanity.mk).
.PHONY: test-units-ansible-test

test-units-ansible-test: sanity-tree sanity-getpip
	cd $(SANITY_ROOT) && ansible-test units --venv --requirements --python $(SANITY_PYTHON) --color no

TEST_TARGETS += test-units-ansible-test
