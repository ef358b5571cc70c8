"""The latency benchmark end to end on the real broker, briefly: traffic from its own process, decisions matched
to their events by the broker's append times."""

from __future__ import annotations

from bench.benchmark import fresh_topics
from bench.latency import bench_latency


def test_the_latency_bench_measures_decisions_from_a_separate_traffic_process(kafka_settings, tmp_path):
    base = kafka_settings.model_copy(update={"state_dir": tmp_path / "state", "metrics_port": None})
    # topics the bench creates itself, stamped by the broker (LogAppendTime)
    settings = fresh_topics(base, "latency", partitions=1)
    result = bench_latency(settings, rate=200.0, duration_s=6.0, users=2_000, warmup_s=4.0)
    assert result["events_sent"] > 1_000  # counted in the traffic process and handed back
    assert result["decisions_measured"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["worker_batches"] > 0
    assert set(result["worker_ms_per_batch_by_stage"]) >= {"read", "parse", "policy", "write"}
