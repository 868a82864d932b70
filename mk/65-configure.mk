# storage_conf module + configure role on lab hosts (sid: fuse-overlayfs store -> shared layers;
# bookworm: left untouched; trixie: vendor file, Podman-rejected and malformed files).
# Unit tests of this area run in test-unit (tests/unit/plugins/{plugin_utils,action,modules}).
.PHONY: test-configure
test-configure: deps
	cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -s tests/integration/test_configure.py

TEST_TARGETS += test-configure
