"""``make bench-ope``: off-policy evaluation on real logs, the Open Bandit Dataset sample (campaign ``all``).

What it measures, on the 10,000-round samples of ZOZOTOWN's ``random`` and ``bts`` logs that ``make setup``
installs (Saito et al. 2021; 80 items, 3 positions, one row per round):

1. the uniform-random policy's on-policy click rate: the mean click of ``random/all.csv``, with a bootstrap
   95% interval;
2. the same policy's value estimated off-policy from the Bernoulli-TS logs (``bts/all.csv``) with IPW, SNIPW and
   DR (:mod:`bandits.ope.evaluate`) — an estimate to hold against (1);
3. learning policies through Li et al.'s replay on the random logs (unbiased there, as they are uniform):
   ``linear_thompson`` (contextual: the one-hot user features and position), the non-contextual ``thompson``
   and ``uniform``, with matched rounds and clicks.

10,000 rows hold about 40 clicks and replay keeps about 1/80 of them, so policy comparisons here are noise: the
bench checks the machinery on real data, it cannot rank policies. Printed, and written to
``.run/bench/ope.json``. About a minute on two cores (``--mc-samples`` sets the policies' Monte Carlo draws).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bandits.ope.evaluate import evaluate
from bandits.ope.logged_rounds import LoggedRounds, read_obd
from bandits.ope.obd import OBD_WHEEL, obd_csv
from bandits.settings import PolicySettings
from bench.machine import machine, write_results
from stream.app.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
NOISE = "10k rows hold about 40 clicks: every comparison of policies above is noisy (see the intervals)"


def describe(rounds: LoggedRounds, path: Path) -> dict[str, Any]:
    return {"file": str(path), "rows": len(rounds), "clicks": int(rounds.rewards.sum())}


def run(seed: int, resamples: int, mc_samples: int) -> dict[str, Any]:
    policy = load_settings(overrides={"policy": {"mc_samples": mc_samples}}, env={}).policy
    random_path, bts_path = obd_csv("random", "all"), obd_csv("bts", "all")
    random_log, bts_log = read_obd(random_path), read_obd(bts_path)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    on_policy = evaluate(random_log, "uniform", policy, ("ipw",), seed, resamples)["on_policy"]
    off_policy = evaluate(bts_log, "uniform", policy, ("ipw", "snipw", "dr"), seed, resamples)
    timings["uniform_s"] = time.perf_counter() - t

    replays: dict[str, Any] = {}
    for target in targets():
        t = time.perf_counter()
        out = evaluate(random_log, target, policy, ("replay",), seed, resamples, context=random_log.feature_names())
        timings[f"replay_{target}_s"] = time.perf_counter() - t
        replays[target] = out["estimates"]["replay"] | {
            "matched_rounds": out["replay_matches"],
            "clicks": int(out["replay_reward_sum"]),
        }
    return {
        "what": "off-policy evaluation on the Open Bandit Dataset sample, campaign all (see the docstring)",
        "note": NOISE,
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {"wheel": OBD_WHEEL, "random": describe(random_log, random_path), "bts": describe(bts_log, bts_path)},
        "seed": seed,
        "bootstrap": resamples,
        "policy_settings": _knobs(policy),
        "random_on_policy": on_policy,
        "uniform_from_bts": {"on_policy_bts": off_policy["on_policy"]} | off_policy["estimates"],
        "replay_on_random": replays,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }


def targets() -> list[str]:
    from bandits.factory import POLICIES

    return [t for t in ("linear_thompson", "thompson", "uniform") if t in POLICIES]


def _knobs(policy: PolicySettings) -> dict[str, Any]:
    keep = (
        "mc_samples",
        "propensity_floor",
        "prior_precision",
        "noise_prior_shape",
        "noise_prior_scale",
        "exploration",
        "forget_half_life",
        "prior_shape",
        "prior_scale",
    )
    return {k: v for k, v in policy.model_dump().items() if k in keep}


def _ci(e: dict[str, Any]) -> str:
    return f"{e['value']:.5f} [{e['ci'][0]:.5f}, {e['ci'][1]:.5f}]" if e.get("ci") else f"{e['value']:.5f}"


def print_report(r: dict[str, Any]) -> None:
    d = r["data"]
    print(f"Open Bandit Dataset sample ({d['wheel']}), campaign all; seed {r['seed']}, {r['bootstrap']} resamples")
    for k in ("random", "bts"):
        print(f"  {k:<6} {d[k]['file']}: {d[k]['rows']:,} rows, {d[k]['clicks']} clicks")
    print(f"\n(1) uniform random, on-policy click rate (random log):  {_ci(r['random_on_policy'])}")
    print("(2) uniform random estimated off-policy from the BTS log:")
    for name in ("ipw", "snipw", "dr"):
        print(f"      {name:<6} {_ci(r['uniform_from_bts'][name])}")
    print(f"      (the BTS policy's own click rate: {_ci(r['uniform_from_bts']['on_policy_bts'])})")
    print("(3) replay on the random log (policies learn from matched rounds only):")
    for target, e in r["replay_on_random"].items():
        print(f"      {target:<16} {_ci(e)}  matched {e['matched_rounds']} rounds, {e['clicks']} clicks")
    print(f"\nnote: {r['note']}")
    print(f"policy knobs: {r['policy_settings']}; timings: {r['timings_s']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per interval")
    parser.add_argument("--mc-samples", type=int, default=200, help="policies' Monte Carlo draws per choice")
    parser.add_argument("--out", type=Path, default=REPO / ".run/bench/ope.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = run(args.seed, args.bootstrap, args.mc_samples)
    report["timings_s"]["total_s"] = round(time.perf_counter() - started, 1)
    print_report(report)
    write_results(args.out, report)


if __name__ == "__main__":
    main()
