# Unit tests of every area: pure Python, no Podman, no root needed for most.
.PHONY: test-unit
test-unit: deps
	cd $(CURDIR) && python -m pytest -q -p no:cacheprovider tests/unit

TEST_TARGETS += test-unit
