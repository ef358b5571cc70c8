"""The Kafka edge's settings (section ``kafka``): where the worker reads and writes, how its clients behave."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class KafkaSettings(BaseModel):
    """Where the worker reads and writes, and how its kafka-python clients behave."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str | None = Field(
        None, description="host:port[,host:port]; unset means 'start the local broker' for make run"
    )
    clickstream_topic: str = Field(
        "offerstream.clickstream", description="the input: one JSON event per message, keyed by user_id"
    )
    decisions_topic: str = Field(
        "offerstream.decisions", description="the offers decided, with their propensities (read it read_committed)"
    )
    rewards_topic: str = Field("offerstream.rewards", description="each decision's reward once it resolves")
    dead_letter_topic: str = Field(
        "offerstream.dead-letters",
        description="messages that are not valid events, with the reason and their exact bytes",
    )
    group_id: str = Field(
        "offerstream-worker", description="the workers' consumer group (and the prefix of their transactional ids)"
    )
    changelog_topic: str | None = Field(
        None,
        description=(
            "the compacted topic the partition states' changes go to, one partition per clickstream partition, "
            "written in each batch's transaction (default: GROUP_ID.state-changelog)"
        ),
    )
    model_topic: str | None = Field(
        None,
        description="the fleet's shared learning (one partition, compacted): each worker's lessons, written in its "
        "transactions, and the fleet's model (default: GROUP_ID.model)",
    )
    share_every_s: float = Field(
        0.0,
        ge=0.0,
        description="seconds between a worker's lessons to the fleet; 0: one with every batch's transaction, so "
        "no learning is lost with a worker that dies (more: fewer, larger lessons, and a dying worker takes up "
        "to this much of its learning with it)",
    )
    model_every_s: float = Field(
        60.0, gt=0.0, description="seconds between a worker's copies of the fleet's model on the model topic"
    )
    client_id: str = Field("offerstream", description="kafka-python's client.id, in the brokers' logs and metrics")
    partitions: int = Field(3, ge=1, description="partitions of topics that offerstream creates")
    max_poll_records: int = Field(500, ge=1, description="most records one poll (one batch) takes")
    poll_timeout_ms: int = Field(100, ge=0, description="how long a poll waits for records when none are ready")
    fetch_max_bytes: int = Field(52_428_800, ge=1024, description="most bytes one fetch response carries")
    linger_ms: int = Field(5, ge=0, description="how long the producer waits to fill a batch")
    retry_backoff_ms: int = Field(
        20,
        ge=1,
        description=(
            "the producer's wait before retrying a request; kafka-python waits this long before every retried "
            "transaction request, and a transaction begun right after the last one's commit is routinely retried "
            "(CONCURRENT_TRANSACTIONS while the broker writes the markers), so its default of 100 ms showed up "
            "in the decisions' latency; 20 ms is the Java client's wait for that retry"
        ),
    )
    batch_size: int = Field(65_536, ge=1024, description="the producer's batch size in bytes")
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = Field(
        None, description="the producer's compression (none when unset)"
    )
    max_request_size: int = Field(4_194_304, ge=1024, description="producer cap; dead letters carry input bytes")
    processing_guarantee: Literal["exactly-once", "at-least-once"] = Field(
        "exactly-once",
        description=(
            "exactly-once: each batch's outputs and offsets commit in one transaction (stream/kafka/transactions.py)"
        ),
    )
    instance_id: str | None = Field(
        None,
        description=(
            "this worker's stable identity across restarts (default: from the host name and state dir): its "
            "transactional id is GROUP-INSTANCE and, with static_membership, its group.instance.id"
        ),
    )
    static_membership: bool = Field(
        True, description="rejoin the group as the same member after a restart, without waiting for a rebalance"
    )
    transaction_timeout_ms: int = Field(
        10_000,
        ge=1000,
        description=(
            "the broker aborts a transaction left open this long: a crashed worker's open transaction holds every "
            "read_committed reader of its output partitions back until then (Kafka Streams uses 10 s too); a batch "
            "must produce, flush and commit within it"
        ),
    )
    stall_timeout_s: float = Field(
        120.0,
        ge=0,
        description=(
            "no record and no progress for this long while there is input to read (behind the known end, or a "
            "fresh reader finds records from the worker's next offset) or the group join does not finish: the "
            "consumer is stuck (seen after a broker restart), so the worker rebuilds its clients from the "
            "checkpoint; 0 = off"
        ),
    )
    isolation_level: Literal["read_committed", "read_uncommitted"] = Field(
        "read_committed", description="what the worker reads of transactional producers' messages"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how clients talk to the brokers"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI"] | None = Field(
        None, description="SASL login mechanism, with SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_plain_username: str | None = Field(None, description="SASL user name")
    sasl_plain_password: SecretStr | None = Field(None, description="SASL password (masked when printed)")
    ssl_cafile: str | None = Field(None, description="CA bundle that signed the brokers' certificates")
    ssl_certfile: str | None = Field(None, description="client certificate (mutual TLS)")
    ssl_keyfile: str | None = Field(None, description="client certificate's private key")
    ssl_password: SecretStr | None = Field(None, description="password of the private key")
    ssl_check_hostname: bool = Field(
        True, description="check that the broker's certificate names the host connected to"
    )

    @property
    def state_changelog_topic(self) -> str:
        return self.changelog_topic or f"{self.group_id}.state-changelog"

    @property
    def learning_topic(self) -> str:
        return self.model_topic or f"{self.group_id}.model"

    def client_options(self) -> dict[str, Any]:
        """Options shared by every kafka-python client (secrets revealed only here)."""
        opts: dict[str, Any] = {
            "bootstrap_servers": (self.bootstrap_servers or "").split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            opts["sasl_mechanism"] = self.sasl_mechanism
        if self.sasl_plain_username:
            opts["sasl_plain_username"] = self.sasl_plain_username
        if self.sasl_plain_password is not None:
            opts["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name):
                opts[name] = getattr(self, name)
        if self.ssl_password is not None:
            opts["ssl_password"] = self.ssl_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            opts["ssl_check_hostname"] = self.ssl_check_hostname
        return opts
