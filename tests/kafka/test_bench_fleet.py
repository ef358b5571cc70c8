"""``make bench-fleet``'s restore measurement against a real broker, small: every user comes back, timed."""

from __future__ import annotations

from bench.fleet import bench_restore


def test_the_restore_bench_reads_back_every_user(kafka_settings):
    result = bench_restore(kafka_settings, users=2_000, runs=1)
    assert result["users"] == 2_000 and result["records"] == 2_000 + 100 + 1
    assert result["seconds_median"] > 0 and result["seconds_per_100k_users"] > 0
