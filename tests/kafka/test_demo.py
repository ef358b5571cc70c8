"""`make run`'s command against a real broker: a worker process and closed-loop shoppers, decisions flowing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_shows_decisions_flowing_and_stops_cleanly(tmp_path, bootstrap):
    tag = uuid.uuid4().hex[:8]
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        OFFERSTREAM_KAFKA__CLICKSTREAM_TOPIC=f"demo{tag}.clickstream",
        OFFERSTREAM_KAFKA__DECISIONS_TOPIC=f"demo{tag}.decisions",
        OFFERSTREAM_KAFKA__REWARDS_TOPIC=f"demo{tag}.rewards",
        OFFERSTREAM_KAFKA__DEAD_LETTER_TOPIC=f"demo{tag}.dead",
        OFFERSTREAM_KAFKA__GROUP_ID=f"demo{tag}",
        OFFERSTREAM_STATE_DIR=str(tmp_path / "state"),
    )
    done = _demo(env, "--rate", "150", "--duration", "25")
    last = _last_line(done)
    assert "worker exited with 0" in done.stdout
    assert "stopped cleanly" in done.stderr

    # `make run WORKERS=3` on the same topics and group, right after: the same seed's shoppers come back (their
    # events are new ones, not duplicates), and three workers share the partitions, each shown in the summary
    again = _demo(env, "--rate", "150", "--duration", "25", "--workers", "3")
    last = _last_line(again)
    shown = dict(re.findall(r"(worker-\d)\[([\d,]*)\]", last.split("| workers:", 1)[-1]))
    assert sorted(shown) == ["worker-1", "worker-2", "worker-3"], last
    owned = [p for parts in shown.values() for p in parts.split(",") if p]
    assert sorted(owned) == ["0", "1", "2"], last  # three partitions, one each
    assert "workers exited with [0, 0, 0]" in again.stdout
    assert again.stderr.count("stopped cleanly") == 3


def _demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "stream", "demo", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stdout.splitlines() if "events=" in line]
    assert len(lines) >= 5, done.stdout
    last = lines[-1]
    decisions = int(re.search(r"decisions=(\d+)", last).group(1))
    sent = int(re.search(r"events=(\d+)", last).group(1))
    assert sent > 1000 and decisions > 10, last
    return last
