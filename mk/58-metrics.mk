# Prometheus metrics (plugins/module_utils/metrics_textfile.py) and alerting rules
# (extensions/prometheus/): promtool check metrics / check rules / test rules (Debian's
# prometheus package), and a real node_exporter serving a lab host's textfile directory.
.PHONY: test-metrics

test-metrics: deps
	cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -rA tests/metrics

TEST_TARGETS += test-metrics
