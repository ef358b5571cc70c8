"""`/metrics` and `/healthz` of a worker consuming from a real broker say what the topics hold."""

from __future__ import annotations

import json
import urllib.request

from factories import records
from kafka_helpers import free_port, run_until_consumed, wait_for
from prometheus_client.parser import text_string_to_metric_families

from stream.app.build import build_processor
from stream.io.file_source import read_file
from stream.kafka.model_topic import ModelRecord
from stream.kafka.sink import KafkaSink
from stream.kafka.topic_files import iter_topic, produce_values
from stream.simulator import simulate_to_file


def _scrape(port: int) -> dict[str, list]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_metrics_and_health_during_a_run(tmp_path, kafka_settings):
    port = free_port()
    settings = kafka_settings.model_copy(update={"metrics_port": port, "state_dir": tmp_path / "state"})
    events = tmp_path / "events.jsonl"
    simulate_to_file("stationary", days=1, users=800, seed=4, out=events)
    values = [r.value for r in read_file(events)] + [b"not json", b"{}", b'{"event_type": 3}']
    produce_values(settings.kafka, settings.kafka.clickstream_topic, values)

    seen = {}
    other = build_processor(settings)  # another worker of the fleet, which learned from the same shop
    other.process_batch(records(values[:2000]))

    def folded() -> float:
        samples = _scrape(port)["offerstream_lessons"]
        return sum(s.value for s in samples if s.name.endswith("_total") and s.labels["outcome"] == "folded")

    def scrape_while_running() -> None:
        wait_for(lambda: _scrape(port)["offerstream_consumer_lag"][0].value == 0, timeout=30, what="lag 0")
        seen["metrics"] = _scrape(port)
        health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status == 200 and json.loads(health.read())["state"] == "consuming"
        # nothing left to read: an idle worker still folds what the rest of the fleet learns
        sink = KafkaSink(settings.kafka)
        sink.write([ModelRecord("lesson", "other", 1, 0, other.lesson()).output()])
        sink.flush()
        sink.close()
        wait_for(lambda: folded() == 1, timeout=30, what="the other worker's lesson folded by the idle worker")

    run_until_consumed(settings, len(values), while_running=scrape_while_running)
    got = seen["metrics"]

    def total(name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in got[name]
            if s.name == f"{name}_total" and all(s.labels.get(k) == v for k, v in labels.items())
        )

    decisions = [m.value for m in iter_topic(settings.kafka, settings.kafka.decisions_topic, 2)]
    dead = [m for m in iter_topic(settings.kafka, settings.kafka.dead_letter_topic, 2)]
    assert total("offerstream_records") == len(values)
    assert total("offerstream_decisions") == len(decisions) > 10
    assert {s.labels["offer"] for s in got["offerstream_decisions"] if s.name.endswith("_total")} <= {
        "none",
        "discount_5",
        "discount_10",
        "discount_15",
        "free_shipping",
    }
    assert total("offerstream_dead_letters") == len(dead) == 3
    assert total("offerstream_dead_letters", reason="invalid_json") == 1
    assert total("offerstream_transactions", outcome="committed") > 0
    batches = [s for s in got["offerstream_batch_duration_seconds"] if s.name.endswith("_count")]
    assert batches and batches[0].value > 0
    models = {s.labels["model"] for s in got["offerstream_model_info"]}
    assert {"policy", "intent", "features"} <= models
    assert got["offerstream_users_tracked"][0].value > 100
