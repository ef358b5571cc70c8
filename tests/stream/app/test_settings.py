"""Settings: security options reach the Kafka clients; secrets reach nothing else; old settings files still load."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from stream.app.settings import describe, load_settings
from stream.cli import main
from stream.core.errors import ConfigError

SECRET = "s3cr3t-pa55word-4711"
KEY_SECRET = "key-pa55-0815"

SECURE_ENV = {
    "OFFERSTREAM_KAFKA__BOOTSTRAP_SERVERS": "broker-1:9093,broker-2:9093",
    "OFFERSTREAM_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
    "OFFERSTREAM_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
    "OFFERSTREAM_KAFKA__SASL_PLAIN_USERNAME": "offerstream",
    "OFFERSTREAM_KAFKA__SASL_PLAIN_PASSWORD": SECRET,
    "OFFERSTREAM_KAFKA__SSL_CAFILE": "/etc/kafka/ca.pem",
    "OFFERSTREAM_KAFKA__SSL_CERTFILE": "/etc/kafka/client.pem",
    "OFFERSTREAM_KAFKA__SSL_KEYFILE": "/etc/kafka/client.key",
    "OFFERSTREAM_KAFKA__SSL_PASSWORD": KEY_SECRET,
}


def test_security_settings_pass_through_to_the_kafka_clients():
    opts = load_settings(env=SECURE_ENV).kafka.client_options()
    assert opts == {
        "bootstrap_servers": ["broker-1:9093", "broker-2:9093"],
        "client_id": "offerstream",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "offerstream",
        "sasl_plain_password": SECRET,
        "ssl_cafile": "/etc/kafka/ca.pem",
        "ssl_certfile": "/etc/kafka/client.pem",
        "ssl_keyfile": "/etc/kafka/client.key",
        "ssl_password": KEY_SECRET,
        "ssl_check_hostname": True,
    }


def test_plaintext_clients_get_no_security_options():
    opts = load_settings(env={"KAFKA_BOOTSTRAP_SERVERS": "localhost:9092"}).kafka.client_options()
    assert opts == {
        "bootstrap_servers": ["localhost:9092"],
        "client_id": "offerstream",
        "security_protocol": "PLAINTEXT",
    }


def test_secrets_are_masked_in_printed_settings_and_reprs():
    settings = load_settings(env=SECURE_ENV)
    for text in (str(describe(settings)), repr(settings), str(settings.kafka), repr(settings.kafka)):
        assert SECRET not in text and KEY_SECRET not in text
    out = CliRunner().invoke(main, ["config"], env=SECURE_ENV)
    assert out.exit_code == 0, out.output
    assert "SCRAM-SHA-512" in out.output and SECRET not in out.output and KEY_SECRET not in out.output


def test_secrets_stay_out_of_help_and_validation_errors():
    help_text = CliRunner().invoke(main, ["run", "--help"], env=SECURE_ENV).output
    assert SECRET not in help_text
    with pytest.raises(ConfigError) as err:
        load_settings(env={**SECURE_ENV, "OFFERSTREAM_KAFKA__SASL_MECHANISM": SECRET})
    assert "sasl_mechanism" in str(err.value) and SECRET not in str(err.value)


def test_a_settings_file_from_before_the_families_split_still_loads(tmp_path):
    """Every section's keys stay where they were when each family took its settings beside its code."""
    config = tmp_path / "offerstream.toml"
    config.write_text(
        """
seed = 7
state_dir = "/var/lib/offerstream"

[kafka]
group_id = "shop-a"
processing_guarantee = "at-least-once"

[processing]
session_gap_s = 900.0
decision_events = ["checkout_start"]
margin = 0.25
dedup_window_s = 60.0

[policy]
name = "linucb"
noise_prior_scale = 0.5
ucb_alpha = 2.0

[models]
tiers = "0-30:1,30-90:0.25"
gate_metric = "auc"
"""
    )
    s = load_settings(config, env={})
    assert (s.seed, str(s.state_dir)) == (7, "/var/lib/offerstream")
    assert (s.kafka.group_id, s.kafka.processing_guarantee) == ("shop-a", "at-least-once")
    assert (s.processing.session_gap_s, s.processing.decision_events) == (900.0, ("checkout_start",))
    assert (s.processing.margin, s.processing.dedup_window_s) == (0.25, 60.0)
    assert (s.policy.name, s.policy.noise_prior_scale, s.policy.ucb_alpha) == ("linucb", 0.5, 2.0)
    assert (s.models.tiers, s.models.gate_metric) == ("0-30:1,30-90:0.25", "auc")
    env = {"OFFERSTREAM_PROCESSING__SESSION_GAP_S": "600", "OFFERSTREAM_POLICY__EXPLORATION": "0.8"}
    s = load_settings(config, env=env)
    assert (s.processing.session_gap_s, s.policy.exploration) == (600.0, 0.8)


def test_an_unknown_key_fails_at_start_naming_it(tmp_path):
    config = tmp_path / "offerstream.toml"
    config.write_text("[processing]\nsession_gap = 900.0\n")
    with pytest.raises(ConfigError, match=r"processing\.session_gap"):
        load_settings(config, env={})


@pytest.mark.parametrize("key", ["fixed_offer", "baseline_offer"])
def test_an_offer_the_catalogue_lacks_fails_at_start_naming_it(key):
    policy = {"name": "fixed" if key == "fixed_offer" else "linear_thompson", key: "free_shiping"}
    with pytest.raises(ConfigError, match=rf"policy\.{key} 'free_shiping' is not in the catalogue"):
        load_settings(overrides={"policy": policy}, env={})
