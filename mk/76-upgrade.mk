# The rollout's opt-in Podman upgrade step (issue 13) on lab hosts with package repositories
# (tests/lab/repo.py): trixie -> sid's 5.8 (shares), trixie and bullseye held (no Podman >= 5.6),
# bookworm -> trixie's 5.4 declared a backport (failed proof, previous Podman installed again).
.PHONY: test-upgrade
test-upgrade: deps
	$(MAKE) -C native
	cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -rA tests/integration/test_rollout_upgrade.py

TEST_TARGETS += test-upgrade
