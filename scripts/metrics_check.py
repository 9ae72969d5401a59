"""Reads a running server's /metrics with the Prometheus client's own parsers
(the text format and OpenMetrics), as a scraper would, and checks that the
request and per-layer families are there and carry the requests made before.

usage: metrics_check.py http://127.0.0.1:PORT
"""
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus

base = sys.argv[1].rstrip("/")
with urllib.request.urlopen(base + "/metrics") as resp:
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text"), resp.headers
    text = resp.read().decode()

for name, parse in (("prometheus", prometheus), ("openmetrics", openmetrics)):
    families = {f.name: f for f in parse(text)}
    for wanted in ("http_server_request_duration_seconds", "glance_layer_call_duration_seconds"):
        assert wanted in families, f"{name}: no {wanted} in {sorted(families)}"
    routes = {s.labels.get("route") for s in families["http_server_request_duration_seconds"].samples}
    assert "/v2/images" in routes, f"{name}: routes {routes}"
    layers = {s.labels.get("layer") for s in families["glance_layer_call_duration_seconds"].samples}
    for layer in ("auth", "policy", "quota", "location", "core"):
        assert layer in layers, f"{name}: layers {layers}"
    print(f"{name} parser: {len(families)} families, routes {len(routes)}, layers {sorted(layers)}")
