# The native helper idmapped-mount (native/), its cffi parser module, fuzzing and the kernel
# matrix. Everything it builds lands in native/build; kernels and initramfs images are cached
# under $(LAB_CACHE)/kernels.
NATIVE_BUILD   := $(CURDIR)/native/build
FUZZ_SECONDS   ?= 60
KMATRIX_ACCEL  ?= tcg
KMATRIX_SUITES ?= bullseye,bookworm,trixie
KMATRIX_FIXTURES := $(CURDIR)/tests/fixtures/kernel-matrix

# The oldest glibc the Debian mirror still serves (bullseye, 2.31: no strerrorname_np).
OLDGLIBC_BUILD := $(NATIVE_BUILD)/bullseye

.PHONY: native test-native test-native-oldglibc fuzz kernel-matrix kernel-matrix-run bench-probe

native: deps
	$(MAKE) -C native all test-bins cffi PYTHON=$(VPY)

# Build the helper in a cached bullseye build root (glibc 2.31) and run its tests on that build.
test-native-oldglibc: native
	$(VPY) tests/native/glibc_buildroot.py --build $(OLDGLIBC_BUILD)
	NATIVE_BUILD=$(OLDGLIBC_BUILD) $(VPY) -m pytest -q -p no:cacheprovider tests/native \
	  --ignore=tests/native/test_kernel_matrix.py --ignore=tests/native/test_idmap_cffi.py

fuzz: deps
	$(MAKE) -C native fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) PYTHON=$(VPY)

# Boot the helper on each kernel; results in native/build/kernel-matrix.
kernel-matrix-run: native
	$(VPY) native/kernel-matrix/kernel_matrix.py --helper $(NATIVE_BUILD)/idmapped-mount \
	  --out $(NATIVE_BUILD)/kernel-matrix --suites $(KMATRIX_SUITES) --accel $(KMATRIX_ACCEL)

# Refresh the fixtures the verdict rules' unit tests read (review the diff, then commit).
kernel-matrix: kernel-matrix-run
	@mkdir -p $(KMATRIX_FIXTURES)
	rm -f $(KMATRIX_FIXTURES)/*.json
	cp $(NATIVE_BUILD)/kernel-matrix/[0-9]*.json $(KMATRIX_FIXTURES)/

# Build, pytest with real mounts (tests/native), a bounded fuzz run, the kernel matrix.
test-native: native
	$(VPY) -m pytest -q -p no:cacheprovider tests/native --ignore=tests/native/test_kernel_matrix.py
	$(MAKE) --no-print-directory test-native-oldglibc
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory kernel-matrix-run
	KERNEL_MATRIX_RESULTS=$(NATIVE_BUILD)/kernel-matrix \
	  $(VPY) -m pytest -q -p no:cacheprovider tests/native/test_kernel_matrix.py

TEST_TARGETS += test-native

bench-probe: native
	$(VPY) tests/bench/bench_probe.py --helper $(NATIVE_BUILD)/idmapped-mount
