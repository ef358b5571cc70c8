"""Replay determinism: the same recording and seed give the same bytes, whatever the batch size."""

import base64
import gzip

import orjson
import pytest
from click.testing import CliRunner

from stream.cli import main
from stream.io.file_source import RECORDING_MARK
from stream.simulator import simulate_to_file


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "events.jsonl.gz"
    simulate_to_file("seasonal", days=3, users=600, seed=2, out=path)
    return path


def replay(tmp_path, paths, *extra, tag="a"):
    out = tmp_path / f"decisions-{tag}.jsonl"
    dead = tmp_path / f"dead-{tag}.jsonl"
    result = CliRunner().invoke(
        main, ["replay", *map(str, paths), "--decisions", str(out), "--dead-letters", str(dead), *extra]
    )
    assert result.exit_code == 0, result.output
    return out.read_bytes(), dead.read_bytes(), orjson.loads(result.output.strip().splitlines()[-1])


def test_same_seed_same_bytes(tmp_path, events):
    a, _, summary = replay(tmp_path, [events], "--seed", "5", tag="a")
    b, _, _ = replay(tmp_path, [events], "--seed", "5", tag="b")
    assert a == b and summary["decisions"] > 20


def test_batch_sizes_1_and_500_give_identical_decisions(tmp_path, events):
    one, _, _ = replay(tmp_path, [events], "--seed", "5", "--batch-size", "1", tag="one")
    many, _, _ = replay(tmp_path, [events], "--seed", "5", "--batch-size", "500", tag="many")
    assert one == many


def test_another_seed_changes_the_offers_not_the_decision_points(tmp_path, events):
    a, _, _ = replay(tmp_path, [events], "--seed", "5", tag="a")
    b, _, _ = replay(tmp_path, [events], "--seed", "6", tag="b")
    da = [orjson.loads(x) for x in a.splitlines()]
    db = [orjson.loads(x) for x in b.splitlines()]
    assert [d["decision_id"] for d in da] == [d["decision_id"] for d in db]
    assert [d["offer"] for d in da] != [d["offer"] for d in db]


def test_gzip_and_plain_files_replay_alike(tmp_path, events):
    plain = tmp_path / "events.jsonl"
    plain.write_bytes(gzip.decompress(events.read_bytes()))
    assert replay(tmp_path, [events], tag="gz")[0] == replay(tmp_path, [plain], tag="plain")[0]


def test_a_recording_replays_like_the_plain_file_and_keeps_bad_bytes(tmp_path, events):
    lines = gzip.decompress(events.read_bytes()).splitlines()
    lines.insert(10, b"\xff\xfe not utf-8")
    plain = tmp_path / "mixed.jsonl"
    plain.write_bytes(b"\n".join(lines) + b"\n")
    recording = tmp_path / "mixed.rec.jsonl"
    entries = [{RECORDING_MARK: 1, "topic": "mixed.jsonl"}]
    for offset, line in enumerate(lines, start=1):
        try:
            entries.append(
                {"partition": 0, "offset": offset, "timestamp_ms": None, "key": None, "value": line.decode()}
            )
        except UnicodeDecodeError:
            entries.append(
                {
                    "partition": 0,
                    "offset": offset,
                    "timestamp_ms": None,
                    "key": None,
                    "value_b64": base64.b64encode(line).decode(),
                }
            )
    recording.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in entries))
    d1, dead1, _ = replay(tmp_path, [plain], tag="plain")
    d2, dead2, _ = replay(tmp_path, [recording], tag="rec")
    assert d1 == d2 and dead1 == dead2
    (dead,) = [orjson.loads(x) for x in dead1.splitlines()]
    assert base64.b64decode(dead["value_b64"]) == b"\xff\xfe not utf-8" and dead["offset"] == 11


def test_a_line_that_is_not_an_event_is_a_dead_letter_not_an_error(tmp_path):
    f = tmp_path / "few.jsonl"
    f.write_bytes(b'{"event_id":"e1","ts":1767600000000,"user_id":"u","type":"add_to_cart"}\n[1,2]\n\n{"half":\n')
    _decisions, dead, summary = replay(tmp_path, [f])
    assert summary["decisions"] == 1 and summary["dead_letters"] == 2
    assert [orjson.loads(x)["reason"] for x in dead.splitlines()] == ["not_an_object", "invalid_json"]


@pytest.mark.parametrize("policy", ["linear_thompson", "linucb"])
def test_the_policy_option_runs_every_configurable_policy(tmp_path, events, policy):
    from bandits.factory import POLICIES
    from bandits.settings import POLICY_NAMES

    assert set(POLICY_NAMES) == set(POLICIES)
    decisions, _, summary = replay(tmp_path, [events], "--policy", policy, tag=policy)
    body = orjson.loads(decisions.splitlines()[0])
    assert summary["decisions"] > 20 and body["policy"] == policy
