"""Parses an OpenMetrics text exposition (stdin) with the Prometheus project's own parser, which
refuses anything malformed, and prints its samples as JSON: [name, labels, value] each."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append([s.name, s.labels, s.value])
json.dump(samples, sys.stdout)
