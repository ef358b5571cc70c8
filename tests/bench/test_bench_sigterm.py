"""A killed `make bench` still stops the broker it started: SIGTERM unwinds through `finally`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, signal, time
    from bench.benchmark import exit_on_sigterm
    exit_on_sigterm()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        print("not interrupted")
    finally:
        print("broker stopped")
    """
)


def test_sigterm_runs_the_finally_that_stops_the_broker():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["broker", "stopped"]
    assert done.returncode == 128 + 15
