# make demo: lab hosts with real Podman, inode exhaustion reproduced, the rollout over SSH, and a
# before/after table per host (tests/demo/demo.py). Lab hosts are torn down at the end, also on
# failure; nothing touches this machine's /etc/containers or /var/lib/containers.
# DEMO_FILES (image files, 300), DEMO_INODES (store inodes, 4096), DEMO_MAPS (maps per host, 3).
demo: deps
	python tests/demo/demo.py
