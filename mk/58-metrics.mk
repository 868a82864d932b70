# Prometheus metrics (plugins/module_utils/metrics_textfile.py) and alerting rules
# (extensions/prometheus/): promtool check metrics / check rules / test rules (Debian's
# prometheus package), and a real node_exporter serving a lab host's textfile directory.
.PHONY: test-metrics

# promtool on the rules and on every file the collection writes (seconds), then one bookworm
# lab host whose textfile directory a real node_exporter serves, scraped over HTTP.
test-metrics: deps
	cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -rA tests/metrics \
	  tests/integration/test_metrics_node_exporter.py

TEST_TARGETS += test-metrics

# Sliced jobs (issue 21 item 3): 3 slices over 6 lab hosts through ansible-runner, merged by
# report_merge, equal to one unsliced run host for host.
.PHONY: test-slicing
test-slicing: deps
	cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -rA tests/integration/test_slicing.py

TEST_TARGETS += test-slicing
