"""Signed checkpoints of the processing core: round trips, and every kind of bad file refused (never unpickled)."""

from __future__ import annotations

import errno
import hashlib
import hmac
import logging
import stat

import orjson
import pytest
from factories import MINUTE, T0, event, processor, records

from stream.core.records import OutputKind
from stream.engine.checkpoint import _MAGIC, checkpoint_key, read_snapshot, snapshot_path, write_snapshot

KEY = b"k" * 32
OFFSETS = {"t.clickstream:0": 12, "t.clickstream:1": None}
STATE = {"counters": {"decisions.none": 3}, "nested": [1, 2.5, "x", None]}


@pytest.fixture
def path(tmp_path):
    return snapshot_path(tmp_path / "state", "group/1 a")


def test_snapshot_path_is_a_safe_file_name_in_the_state_dir(tmp_path):
    assert snapshot_path(tmp_path, "group/1 a:b") == tmp_path / "group_1_a_b.snapshot.json"


def test_write_then_read_round_trips(path):
    write_snapshot(path, OFFSETS, STATE, KEY)
    assert read_snapshot(path, KEY) == (OFFSETS, STATE)
    assert not path.with_suffix(".tmp").exists()


def test_a_full_disk_leaves_the_previous_checkpoint_intact_and_no_partial_file(path, monkeypatch):
    write_snapshot(path, OFFSETS, STATE, KEY)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("stream.engine.checkpoint.os.fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_snapshot(path, {"t.clickstream:0": 99}, {"newer": True}, KEY)
    assert read_snapshot(path, KEY) == (OFFSETS, STATE)
    assert not path.with_suffix(".tmp").exists()


def test_a_worker_whose_checkpoint_fails_logs_it_and_goes_on(tmp_path, monkeypatch, caplog):
    from types import SimpleNamespace

    from stream.app.settings import load_settings
    from stream.app.worker import _Attempt

    settings = load_settings(env={}, overrides={"state_dir": str(tmp_path / "state")})
    attempt = _Attempt(settings, None)
    attempt.processor = processor()
    source = SimpleNamespace(
        settle_commits=lambda: True, committed={}, consumer=SimpleNamespace(assignment=lambda: set())
    )
    monkeypatch.setattr(
        "stream.app.worker.write_checkpoint", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "disk full"))
    )
    with caplog.at_level(logging.ERROR):
        assert attempt._checkpoint(source, 5000)
    assert "checkpoint at offsets" in caplog.text and "disk full" in caplog.text
    assert attempt.checkpointed_at == 5000  # the next try waits for the next interval, not the next batch


def test_a_missing_file_is_none_without_noise(path, caplog):
    with caplog.at_level(logging.INFO, logger="stream.engine.checkpoint"):
        assert read_snapshot(path, KEY) is None
    assert caplog.records == []


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_byte_in_the_body_is_refused_and_logged(path, caplog, where):
    write_snapshot(path, OFFSETS, STATE, KEY)
    raw = bytearray(path.read_bytes())
    body_start = raw.index(b"\n") + 1
    i = {"first": body_start, "middle": (body_start + len(raw)) // 2, "last": len(raw) - 1}[where]
    raw[i] ^= 0x01
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.ERROR, logger="stream.engine.checkpoint"):
        assert read_snapshot(path, KEY) is None
    assert any(r.levelno == logging.ERROR and "signature" in r.getMessage() for r in caplog.records)


def test_a_flipped_byte_in_the_signature_is_refused(path, caplog):
    write_snapshot(path, OFFSETS, STATE, KEY)
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"\n") - 1] ^= 0x01
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.ERROR, logger="stream.engine.checkpoint"):
        assert read_snapshot(path, KEY) is None
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_a_truncated_file_is_refused(path, caplog):
    write_snapshot(path, OFFSETS, STATE, KEY)
    path.write_bytes(path.read_bytes()[:-5])
    with caplog.at_level(logging.ERROR, logger="stream.engine.checkpoint"):
        assert read_snapshot(path, KEY) is None
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_a_file_written_with_another_key_is_refused(path, caplog):
    write_snapshot(path, OFFSETS, STATE, b"another key")
    with caplog.at_level(logging.ERROR, logger="stream.engine.checkpoint"):
        assert read_snapshot(path, KEY) is None
    assert any("signature" in r.getMessage() for r in caplog.records)
    assert read_snapshot(path, b"another key") == (OFFSETS, STATE)


def test_an_unsigned_legacy_plain_json_file_is_refused(path, caplog):
    path.parent.mkdir(parents=True)
    path.write_bytes(orjson.dumps({"offsets": OFFSETS, "state": STATE}))
    with caplog.at_level(logging.ERROR, logger="stream.engine.checkpoint"):
        assert read_snapshot(path, KEY) is None
    assert any(r.levelno == logging.ERROR and "not a signed checkpoint" in r.getMessage() for r in caplog.records)


def test_a_signed_file_that_is_not_a_checkpoint_is_none(path, caplog):
    # Correctly signed but without the expected fields: None and a warning, not an exception.
    body = orjson.dumps({"something": "else"})
    path.parent.mkdir(parents=True)
    path.write_bytes(_MAGIC + hmac.new(KEY, body, hashlib.sha256).hexdigest().encode() + b"\n" + body)
    with caplog.at_level(logging.WARNING, logger="stream.engine.checkpoint"):
        assert read_snapshot(path, KEY) is None
    assert any("unreadable" in r.getMessage() for r in caplog.records)


def test_checkpoint_key_creates_a_private_key_file_once_and_reuses_it(tmp_path):
    state_dir = tmp_path / "state"
    key = checkpoint_key(state_dir)
    key_file = state_dir / ".checkpoint.key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key) >= 32 and key == key_file.read_bytes().strip()
    mtime = key_file.stat().st_mtime_ns
    assert checkpoint_key(state_dir) == key
    assert key_file.stat().st_mtime_ns == mtime
    assert not key_file.with_suffix(".tmp").exists()
    assert checkpoint_key(tmp_path / "elsewhere") != key  # each state directory has its own


def test_a_configured_key_is_used_as_given_and_no_key_file_is_made(tmp_path):
    state_dir = tmp_path / "state"
    assert checkpoint_key(state_dir, b"configured secret") == b"configured secret"
    assert not (state_dir / ".checkpoint.key").exists()


def test_a_key_file_signs_what_the_same_key_file_reads(tmp_path):
    state_dir = tmp_path / "state"
    path = snapshot_path(state_dir, "g")
    write_snapshot(path, OFFSETS, STATE, checkpoint_key(state_dir))
    assert read_snapshot(path, checkpoint_key(state_dir)) == (OFFSETS, STATE)


def _busy_processor():
    core = processor()
    events = [
        event("e1", "session_start", ts=T0),
        event("e2", "product_view", ts=T0 + 1000, price=10.0),
        event("e3", "add_to_cart", ts=T0 + 2000, price=10.0),
        event("e4", "checkout_start", ts=T0 + 3000),
        event("e5", "purchase", ts=T0 + 4000, revenue=10.0),
        event("f1", "session_start", ts=T0 + MINUTE, user="u2", session="s2"),
        event("f2", "add_to_cart", ts=T0 + MINUTE + 1000, user="u2", session="s2", price=25.0),
        event("f3", "session_end", ts=T0 + 2 * MINUTE, user="u2", session="s2"),
        event("g1", "add_to_cart", ts=T0 + 300 * MINUTE, user="u3", session="s3", price=5.0),
    ]
    outputs = [o for r in records(events) for o in core.process(r)]
    assert {o.kind for o in outputs} == {OutputKind.DECISION, OutputKind.REWARD}
    return core, outputs


def test_a_processor_snapshot_survives_write_read_restore(tmp_path):
    core, outputs = _busy_processor()
    assert outputs  # the core did something worth keeping
    state = core.snapshot()
    path = snapshot_path(tmp_path, "g")
    write_snapshot(path, OFFSETS, state, KEY)
    found = read_snapshot(path, KEY)
    assert found is not None
    offsets, restored_state = found
    assert offsets == OFFSETS

    fresh = processor()
    assert orjson.dumps(fresh.snapshot()) != orjson.dumps(state)
    fresh.restore(restored_state)
    assert orjson.dumps(fresh.snapshot()) == orjson.dumps(core.snapshot())

    # And the restored core carries on exactly as the original does.
    more = [event("h1", "add_to_cart", ts=T0 + 301 * MINUTE, user="u4", session="s4", price=7.0)]
    got_original = [orjson.dumps(o.body) for r in records(more) for o in core.process(r)]
    got_restored = [orjson.dumps(o.body) for r in records(more) for o in fresh.process(r)]
    assert got_original == got_restored
    assert orjson.dumps(fresh.snapshot()) == orjson.dumps(core.snapshot())
