"""Log lines as JSON objects for log pipelines, with the message's topic, partition and offset as fields."""

from __future__ import annotations

import io
import logging

import orjson
from click.testing import CliRunner
from factories import processor
from factories import records as make_records

from stream.cli import main
from stream.core import logs


def _json_lines(logger_name: str, emit) -> list[dict]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    logger = logging.getLogger(logger_name)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        emit()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_a_dead_letter_logs_its_topic_partition_offset_and_reason_as_fields():
    core = processor()
    batch = make_records([b"{not json", b"[1, 2]"], topic="clicks", partition=3)
    lines = _json_lines("stream.engine.processor", lambda: core.process_batch(batch))
    dead = [line for line in lines if line["message"].startswith("dead letter")]
    assert [(d["topic"], d["partition"], d["offset"], d["reason"]) for d in dead] == [
        ("clicks", 3, 0, "invalid_json"),
        ("clicks", 3, 1, "not_an_object"),
    ]
    for d in dead:
        assert d["level"] == "INFO" and d["logger"] == "stream.engine.processor" and d["time"]


def test_an_exception_keeps_its_traceback_in_one_json_line():
    def fail() -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("offerstream.test").exception("it failed", extra=logs.where("t", 0, 7))

    (line,) = _json_lines("offerstream.test", fail)
    assert line["level"] == "ERROR" and line["offset"] == 7
    assert "ValueError: boom" in line["exc_info"]


def test_the_cli_takes_the_log_format():
    out = CliRunner().invoke(main, ["config", "--log-format", "json"])
    assert out.exit_code == 0, out.output
    assert orjson.loads(out.output)["log_format"] == "json"
    text = CliRunner().invoke(main, ["config"])
    assert orjson.loads(text.output)["log_format"] == "text"
