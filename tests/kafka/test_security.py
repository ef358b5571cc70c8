"""SASL settings reach a real broker's clients, and a failing login leaks the password nowhere."""

from __future__ import annotations

import logging

import pytest
from kafka.errors import KafkaError
from pydantic import SecretStr

from stream.kafka.clients import make_producer
from stream.kafka.source import KafkaSource

SECRET = "s3cr3t-pa55word-4711"


def test_a_failed_sasl_login_logs_and_raises_without_the_password(kafka_settings, caplog):
    # The test broker listens in PLAINTEXT: a SASL client cannot log in, which is the failure we want to watch.
    k = kafka_settings.kafka.model_copy(
        update={
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": "offerstream",
            "sasl_plain_password": SecretStr(SECRET),
        }
    )
    messages = []
    with caplog.at_level(logging.DEBUG):
        for connect in (
            lambda: make_producer(k, bootstrap_timeout_ms=4000),
            lambda: KafkaSource(k, metadata_wait_s=1, bootstrap_timeout_ms=4000),
        ):
            with pytest.raises(KafkaError) as err:
                connect().close()
            messages.append(f"{err.value!r} {err.value}")
    assert caplog.records, "kafka-python logged nothing about the failed login"
    assert any("sasl" in r.getMessage().lower() or "auth" in r.getMessage().lower() for r in caplog.records)
    assert SECRET not in caplog.text
    assert all(SECRET not in m for m in messages)
