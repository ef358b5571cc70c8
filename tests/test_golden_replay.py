"""The golden replay: one fixed recording, bad lines included, through the whole product, pinned by digest.

A simulated shop (10 days, 1,500 shoppers, seed 11) with hand-made bad lines at fixed places is replayed with
seed 3 into decisions, rewards, dead letters and a day-partitioned archive; the nightly retrain trains a
snapshot from that archive and a second replay scores with it. Every output is hashed. The digests were pinned
before the code was rearranged into its floors and must never move unless behaviour is meant to change: a
moved module that changed one decision, one feature, one dead-letter reason or one archived byte fails here.

When a change is *meant* to alter behaviour, rerun with ``OFFERSTREAM_GOLDEN_PRINT=1 pytest -s`` to print the
new digests, and say in the commit why they moved.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from stream.cli import main

GOLDEN = {
    "events": "4859f5dd52f7ae2b66dff42fb8d410836807ee7fdd38546479deebf86befd120",
    "decisions": "f0e4228be303ad98cb4fc265be49a4f2c6b1c9d64f4b41930eef9a1721d0fd06",
    "rewards": "5a4b8b5f56103dbd722ff0fc3c89b83690c8d56331209583e924f21227ce1bc4",
    "dead_letters": "dcab8d2c78078f2c2f0a227d4c398aa49c66dc879dd149aba6449644654d74ed",
    "archive": "160bd9dde964d0c4eca7f12b4bacc5396fe67af0654e1b3ac6201a424bb30a58",
    "scored_decisions": "2940a1e31bfd96ac399810bb126bdfed4f2b72259d529b88208b8d4eff9c7d29",
    "scored_rewards": "0f1c0949e1fca9caa22092bf9d619428f04343c8439b904f3b137cf73b2b514b",
}

# Bad lines, each inserted after the valid line of the same index: every one must become a dead letter.
_OVERSIZED = orjson.dumps(
    {"event_id": "big", "ts": 1767600000000, "user_id": "u1", "type": "page_view", "url": "x" * 70_000}
)
BAD_LINES: dict[int, bytes] = {
    50: b"\xff\xfe not utf-8 at all",
    900: b'{"event_id": "cut", "ts": 17676',
    2_000: b"[1, 2, 3]",
    5_000: b'{"event_id": "nouser", "ts": 1767700000000, "type": "page_view"}',
    9_000: b'{"event_id": "neg", "ts": 1767800000000, "user_id": "u1", "type": "product_view", "price": -5}',
    20_000: b'{"event_id": "old", "ts": 315532800000, "user_id": "u1", "type": "page_view"}',
    30_000: _OVERSIZED,
}
DUPLICATE_OF = {40_000: 39_990}  # an exact copy of an earlier line, inside the dedup window


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _invoke(args: list[str]) -> None:
    env = {"OFFERSTREAM_MODELS__ARCHIVE_WRITER_ID": "golden", "KAFKA_BOOTSTRAP_SERVERS": None}
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("golden")
    simulated = tmp / "simulated.jsonl"
    _invoke(
        ["simulate", "--scenario", "abrupt", "--days", "10", "--users", "1500", "--seed", "11", "--out", str(simulated)]
    )
    lines = simulated.read_bytes().splitlines()
    recording: list[bytes] = []
    for i, line in enumerate(lines):
        recording.append(line)
        if i in BAD_LINES:
            recording.append(BAD_LINES[i])
        if i in DUPLICATE_OF:
            recording.append(lines[DUPLICATE_OF[i]])
    events = tmp / "events.jsonl"
    events.write_bytes(b"\n".join(recording) + b"\n")

    archive, registry = tmp / "archive", tmp / "registry"
    first = {name: tmp / f"{name}.jsonl" for name in ("decisions", "rewards", "dead_letters")}
    _invoke(
        ["replay", str(events), "--seed", "3", "--archive", str(archive), "--decisions", str(first["decisions"]),
         "--rewards", str(first["rewards"]), "--dead-letters", str(first["dead_letters"])]
    )  # fmt: skip
    _invoke(
        ["retrain", "--archive", str(archive), "--registry", str(registry), "--as-of", "2026-01-14", "--no-compare",
         "--rounds", "30", "--threads", "1", "--seed", "3"]
    )  # fmt: skip
    second = {name: tmp / f"scored_{name}.jsonl" for name in ("decisions", "rewards", "dead_letters")}
    _invoke(
        ["replay", str(events), "--seed", "3", "--registry", str(registry), "--decisions", str(second["decisions"]),
         "--rewards", str(second["rewards"]), "--dead-letters", str(second["dead_letters"])]
    )  # fmt: skip

    archived = b"".join(
        str(p.relative_to(archive)).encode() + b"\n" + _read(p) for p in sorted(archive.rglob("*")) if p.is_file()
    )
    return {
        "events": events.read_bytes(),
        **{name: path.read_bytes() for name, path in first.items()},
        "archive": archived,
        "scored_decisions": second["decisions"].read_bytes(),
        "scored_rewards": second["rewards"].read_bytes(),
    }


def test_the_recording_holds_what_the_digest_is_meant_to_cover(outputs):
    decisions = [orjson.loads(line) for line in outputs["decisions"].splitlines()]
    scored = [orjson.loads(line) for line in outputs["scored_decisions"].splitlines()]
    reasons = sorted(orjson.loads(line)["reason"] for line in outputs["dead_letters"].splitlines())
    assert len(decisions) > 400 and len({d["offer"] for d in decisions}) > 1
    assert len(reasons) == len(BAD_LINES) + len(DUPLICATE_OF)
    assert {"duplicate", "invalid_json", "not_an_object", "contract_violation", "oversized"} <= set(reasons)
    assert all(d["model_versions"].get("snapshot") for d in scored), "the second replay must score with the snapshot"
    assert outputs["archive"].count(b"date=") >= 10


def test_golden_digests_are_unchanged(outputs):
    digests = {name: _sha(outputs[name]) for name in GOLDEN}
    if os.environ.get("OFFERSTREAM_GOLDEN_PRINT"):
        print("\nGOLDEN = " + orjson.dumps(digests, option=orjson.OPT_INDENT_2).decode())
    changed = {name: digests[name] for name in GOLDEN if digests[name] != GOLDEN[name]}
    assert not changed, f"behaviour changed in: {sorted(changed)} (new digests: {changed})"
