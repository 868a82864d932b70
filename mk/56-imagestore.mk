# A split imagestore (issue 12) on Podman 5.4 and 5.8: what Podman does with a non-contiguous
# map there, and that idmap_support, mapped_layers and the rollout's decision agree (~2.5 min).
.PHONY: test-imagestore
test-imagestore: deps
	$(MAKE) -C native
	cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -s tests/integration/test_imagestore.py

TEST_TARGETS += test-imagestore
