"""The compose stack's Grafana dashboard and Prometheus config ask for what the worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from stream.app.monitoring import WorkerMetrics
from stream.app.settings import Settings

DOCKER = Path(__file__).resolve().parents[3] / "docker"


def _exported() -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names = set()
    for family in WorkerMetrics().registry.collect():  # labelled families have no samples until used
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def test_every_dashboard_query_names_an_exported_metric():
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "offerstream.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for e in exprs for name in re.findall(r"\boffer[a-z_]*", e) if name.startswith("offerstream_")}
    assert len(used) >= 12
    assert used <= _exported(), sorted(used - _exported())


def test_prometheus_scrapes_every_worker_on_its_default_metrics_port():
    """Through the compose service's name, which resolves to every replica (``--scale worker=3``)."""
    config = (DOCKER / "prometheus" / "prometheus.yml").read_text()
    found = re.search(r'dns_sd_configs:\s*- names: \["worker"\]\s*type: A\s*port: (\d+)', config)
    assert found is not None, config
    assert int(found.group(1)) == Settings().metrics_port
    compose = (DOCKER / "compose.yaml").read_text()
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml" in compose
    assert "./grafana/dashboards:/var/lib/grafana/dashboards" in compose


def test_the_compose_worker_scales():
    """``docker compose up --scale worker=3``: no fixed host name (each replica its own instance id, so its own
    transactional id), no shared state volume, and a range of host ports for the replicas' metrics."""
    compose = (DOCKER / "compose.yaml").read_text()
    worker = compose.split("\n  worker:\n", 1)[1].split("\n\n", 1)[0]
    assert "hostname:" not in worker and "worker-data" not in compose
    assert re.search(r'"127\.0\.0\.1:\$\{METRICS_HOST_PORTS:-9464-\d+\}:9464"', worker), worker
