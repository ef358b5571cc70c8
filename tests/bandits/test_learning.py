"""The policy learns from the rewards the worker attributes: on a shop with a clearly best offer, it converges."""

from factories import settings

from stream.app.build import build_processor
from stream.app.replay import decider
from stream.simulator import Simulation, closed_loop_run


def run(policy: str, seed: int = 3) -> dict:
    core = build_processor(settings(seed=seed, policy={"name": policy}))
    sim = Simulation("clear_winner", days=7, users=1500, seed=seed, closed_loop=True)
    shown: list[str] = []
    decide = decider(core)

    def record(event):
        answer = decide(event)
        if answer is not None:
            shown.append(answer[0])
        return answer

    out = closed_loop_run(sim, record)
    out["shown"] = shown
    out["policy_state"] = core.policy.snapshot()
    return out


def test_thompson_converges_to_the_clearly_best_offer():
    out = run("thompson")
    shown = out["shown"]
    assert len(shown) > 300
    late = shown[len(shown) // 2 :]
    assert late.count("free_shipping") / len(late) > 0.85
    means = {o: p["mean"] for o, p in out["policy_state"]["posteriors"].items()}
    assert max(means, key=means.get) == "free_shipping"


def test_thompson_leaves_far_less_on_the_table_than_uniform():
    ts, uniform = run("thompson"), run("uniform")
    assert ts["loop"]["regret"] < 0.25 * uniform["loop"]["regret"]
    assert ts["loop"]["chosen_profit"] > 2 * uniform["loop"]["chosen_profit"]
