"""A real Kafka broker for the tests in this folder.

With ``OFFERSTREAM_TEST_BOOTSTRAP`` set (``.ci/run`` does), the tests use that broker. Otherwise the session
starts its own throw-away broker with docker/kafka/kafka.sh on free ports in a temporary directory, and stops
it at the end. Under CI (``CI=true``) a broker that cannot be had is an error, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from kafka_helpers import BROKER_SCRIPT, free_port

from stream.app.settings import Settings, load_settings
from stream.kafka.clients import ensure_topics

SCRIPT = BROKER_SCRIPT


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.kafka)


def _unavailable(why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs a Kafka broker: {why}", pytrace=False)
    pytest.skip(f"no Kafka broker: {why}")


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory) -> str:
    given = os.environ.get("OFFERSTREAM_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    data_dir = tmp_path_factory.mktemp("kafka")
    port = free_port()
    env = dict(
        os.environ,
        KAFKA_DATA_DIR=str(data_dir),
        KAFKA_PORT=str(port),
        KAFKA_CONTROLLER_PORT=str(free_port()),
    )
    started = subprocess.run(["bash", str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=600)
    if started.returncode != 0:
        _unavailable(f"kafka.sh up failed: {started.stderr[-2000:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(SCRIPT), "down"], env=env, capture_output=True, timeout=120)


@pytest.fixture
def kafka_settings(bootstrap) -> Settings:
    """Settings with topics and group unique to the test, created on the broker."""
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(
        env={},
        overrides={
            "seed": 11,
            "kafka": {
                "bootstrap_servers": bootstrap,
                "clickstream_topic": f"t{tag}.clickstream",
                "decisions_topic": f"t{tag}.decisions",
                "rewards_topic": f"t{tag}.rewards",
                "dead_letter_topic": f"t{tag}.dead-letters",
                "group_id": f"g{tag}",
                "partitions": 3,
            },
        },
    )
    ensure_topics(settings.kafka)
    return settings
