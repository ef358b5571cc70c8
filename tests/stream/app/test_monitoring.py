"""The worker's metrics: deltas from the core's counters, the health check, and the HTTP endpoint."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream.app.monitoring import Health, MetricsServer, WorkerMetrics


def _samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple], float]:
    from prometheus_client import generate_latest

    out = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_follow_the_core_as_deltas_and_never_go_back():
    m = WorkerMetrics()
    m.attach({"records": 100, "decisions.none": 4})  # restored from a checkpoint: counted in a past life
    m.observe_counters({"records": 130, "decisions.none": 5, "decisions.discount_5": 2, "dead_letters.invalid_json": 1})
    m.attach({"records": 120, "decisions.none": 5})  # rebuilt after a failed batch: state went back to 120
    m.observe_counters({"records": 140, "decisions.none": 5, "drift_alarms.intent": 1})
    got = _samples(m)
    assert got[("offerstream_records_total", ())] == 30 + 20
    assert got[("offerstream_decisions_total", (("offer", "none"),))] == 1
    assert got[("offerstream_decisions_total", (("offer", "discount_5"),))] == 2
    assert got[("offerstream_dead_letters_total", (("reason", "invalid_json"),))] == 1
    assert got[("offerstream_drift_alarms_total", (("learner", "intent"),))] == 1


def test_stage_seconds_follow_the_stage_clock_and_restart_with_a_new_core():
    m = WorkerMetrics()
    m.observe_stages({"parse": 2_000_000_000, "state": 500_000_000, "policy": 0})
    m.observe_stages({"parse": 3_000_000_000, "state": 500_000_000, "policy": 0})
    m.attach({})  # a rebuilt core: its clock starts at zero again
    m.observe_stages({"parse": 250_000_000, "state": 0, "policy": 0})
    got = _samples(m)
    assert got[("offerstream_stage_seconds_total", (("stage", "parse"),))] == pytest.approx(3.25)
    assert got[("offerstream_stage_seconds_total", (("stage", "state"),))] == pytest.approx(0.5)
    assert ("offerstream_stage_seconds_total", (("stage", "policy"),)) not in got


def test_model_versions_replace_their_old_label_and_count_updates():
    m = WorkerMetrics()
    m.observe_models({"intent": "intent@3", "snapshot": "v00001"}, 1_000, 61_000)
    m.observe_models({"intent": "intent@9", "snapshot": "v00001"}, 1_000, 121_000)
    got = _samples(m)
    assert ("offerstream_model_info", (("model", "intent"), ("version", "intent@3"))) not in got
    assert got[("offerstream_model_info", (("model", "intent"), ("version", "intent@9")))] == 1
    assert got[("offerstream_model_updates", (("model", "intent"),))] == 9
    assert got[("offerstream_snapshot_age_seconds", ())] == 120


def test_health_fails_when_the_loop_stalls_or_stops():
    now = [0.0]
    h = Health(stall_s=10, clock=lambda: now[0])
    h.tick("restoring")
    now[0] = 500
    assert h.report()[0]  # a long replay is not a stall
    h.tick("consuming", records=5)
    now[0] = 509
    ok, body = h.report()
    assert ok and body["records"] == 5 and body["state"] == "consuming"
    now[0] = 511
    assert not h.report()[0]
    h.tick("stopped")
    assert not h.report()[0]


def test_the_endpoint_serves_metrics_and_health():
    m = WorkerMetrics()
    m.decisions.labels("none").inc(3)
    h = Health(stall_s=60)
    server = MetricsServer(m, h, "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{server.port}"
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert 'offerstream_decisions_total{offer="none"} 3.0' in text
        h.tick("consuming")
        health = urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert health.status == 200 and json.loads(health.read())["status"] == "ok"
        h.tick("stopped")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert err.value.code == 503
    finally:
        server.close()
