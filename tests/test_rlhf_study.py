"""The over-optimisation study's pieces: best-of-n against a reward model (stage `best_of_n`), the
alarm's rule and its early stop, and the careful labellers it spends."""

import math
import random

import pytest
import torch

from alphaloop import runner
from alphaloop.envs.registry import make_env
from alphaloop.recipe import validate_recipe
from alphaloop.stages.alarm import OveroptimisationAlarm

ARCH = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2, "intermediate_size": 64}
SFT = {"kind": "imitate", "steps": 30, "batch_size": 16, "eval_every": 30, "eval_problems": 10, "checkpoint_every": 30}
RM = {"kind": "reward_model", "pairs": 64, "test_pairs": 20, "steps": 10, "batch_size": 16, "eval_every": 10,
      "checkpoint_every": 10}


def tiny(stages: list[dict], seed: int = 0):
    return validate_recipe({"name": "study-tiny", "seed": seed, "threads": 1, "env": {"name": "assistant"},
                            "policy": {"arch": ARCH}, "stages": stages})


class _Weights(torch.nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([float(value)]))


def test_alarm_fires_when_the_proxy_stops_agreeing_with_careful_labels_while_it_rises():
    alarm = OveroptimisationAlarm(agreement=0.5, window=2, min_pairs=8)
    # (step, pairs the proxy ordered like the labels, labelled pairs, win rate over the start, proxy)
    trace = [(0, 9, 10, 0.50, 0.1), (5, 8, 10, 0.58, 0.8), (10, 6, 10, 0.62, 1.2), (15, 4, 10, 0.57, 1.9),
             (20, 3, 10, 0.50, 2.5), (25, 2, 10, 0.41, 3.0)]
    fired = [step for step, agree, n, win, proxy in trace if alarm.observe(step, agree, n, win, proxy, _Weights(step))]
    # pooled over two evals: 0.9, 0.85, 0.7, 0.5, 0.35 < 0.5 at step 20
    assert fired == [20] and alarm.fired_at == 20 and alarm.best_step == 10
    assert alarm.best_weights["w"].item() == 10.0          # the policy from before the alarm is kept


def test_alarm_stays_quiet_without_a_rising_proxy_or_enough_pairs_and_survives_a_resume():
    alarm = OveroptimisationAlarm(agreement=0.5, window=2, min_pairs=8)
    assert not alarm.observe(0, 1, 3, 0.5, 1.0, _Weights(0))        # 3 labelled pairs: too few to decide
    assert not alarm.observe(5, 0, 3, 0.4, 0.8, _Weights(5))        # disagreeing, but the proxy fell
    assert not alarm.observe(10, 0, 3, 0.4, 2.0, _Weights(10))      # 6 pairs pooled: still too few
    resumed = OveroptimisationAlarm(agreement=0.5, window=2, min_pairs=8)
    resumed.load_state_dict(alarm.state_dict())
    assert resumed.observe(15, 1, 6, 0.3, 2.5, _Weights(15)) and resumed.fired_at == 15
    assert resumed.best_step == 0


def test_careful_labels_have_ties_and_prefer_the_gold():
    env = make_env("assistant", split="test")
    problem = next(p for p in env.problems("test", 200, seed=0) if p.meta["kind"] == "add")
    rng = random.Random(0)
    assert env.careful_label(problem, problem.answer, problem.answer, rng) == 0.5
    wins = [env.careful_label(problem, problem.answer, "sure! " + problem.answer + " hope this helps!", rng)
            for _ in range(200)]
    assert sum(wins) / len(wins) > 0.95       # concise beats padded (gold 1.0 vs 0.45, temperature 0.1)


def test_careful_labels_are_gold_and_out_of_learners_reach():
    from alphaloop.envs.assistant import GoldAccessError

    env = make_env("assistant", split="test")
    problem = env.problems("test", 1, seed=0)[0]
    code = compile("env.careful_label(problem, 'a', 'b', rng)", "<learner>", "eval")
    with pytest.raises(GoldAccessError):
        eval(code, {"__name__": "alphaloop.learners.fake", "env": env, "problem": problem, "rng": random.Random(0)})


def test_best_of_n_stage_reports_gold_proxy_and_both_kls(tmp_path):
    r = tiny([SFT, RM, {"kind": "best_of_n", "prompts": 4, "samples": 16}])
    summary = runner.run(r, runner.prepare_run_dir(r, tmp_path / "run"), show_progress=False)
    curve = summary["curves"]["best_of_n"]
    assert [p["n"] for p in curve] == [1, 2, 4, 8, 16]
    for point in curve:
        assert point["kl"] == pytest.approx(math.log(point["n"]) - (point["n"] - 1) / point["n"], abs=1e-6)
        assert 0 <= point["kl_plugin"] <= math.log(16) + 1e-6 and point["kl_plugin"] <= point["kl"] + 1e-6
        assert point["gold"] <= point["gold_ceiling"] + 1e-9
    proxies = [p["proxy"] for p in curve]
    assert proxies == sorted(proxies)          # picking by the proxy raises the proxy, by construction
    assert [f["d"] for f in summary["fits"]] == ["closed-form KL", "plug-in KL"]
    assert all(f["form"] == "bon" for f in summary["fits"])
    final = summary["stages"][2]["final"]["reward_model"]
    assert {"gold_n1", "gold_peak", "n_peak", "fit_alpha", "fit_beta", "fit_r2"} <= set(final)
    from alphaloop.report import build_report

    page = build_report(tmp_path / "run").read_text()
    assert "Over-optimisation fits" in page and "closed-form KL" in page
    assert (tmp_path / "run" / "plots" / "curve-best_of_n.png").is_file()
    assert (tmp_path / "run" / "plots" / "curve-gold_vs_kl.png").is_file()


def test_best_of_n_needs_a_reward_model_and_enough_samples():
    with pytest.raises(Exception, match="needs an earlier reward_model stage"):
        tiny([SFT, {"kind": "best_of_n"}])
    with pytest.raises(Exception, match="ns: n = 64 needs at least that many samples"):
        tiny([SFT, RM, {"kind": "best_of_n", "samples": 32, "ns": [1, 64]}])
    with pytest.raises(Exception, match="reward_models: 'nope' not an earlier reward_model stage"):
        tiny([SFT, RM, {"kind": "best_of_n", "reward_models": ["nope"]}])


def test_early_stop_keeps_the_policy_from_before_the_alarm(tmp_path, monkeypatch):
    # A tiny SFT policy is wrong everywhere, so careful labels would all be ties: script them. Win labels
    # (every third call: two pair labels, then the win label, per prompt): even at eval 0, all won at
    # eval 1, all lost after. From eval 3 on, the alarm
    # is told the proxy disagrees with every pair; it fires at the first such eval whose proxy is above
    # the start's, the stage stops there and keeps eval 1's policy (the best win rate).
    from alphaloop.envs.assistant import AssistantEnv

    calls = []

    def scripted(self, problem, a, b, rng):
        calls.append(1)
        index = (len(calls) - 1) // 24                    # 8 prompts x 3 labels per eval
        return 0.5 if index == 0 or len(calls) % 3 else 1.0 if index == 1 else 0.0

    real_observe = OveroptimisationAlarm.observe

    def told(self, step, agree, pairs, win_rate, proxy, policy):
        return real_observe(self, step, 0 if step >= 3 else 8, 8, win_rate, proxy, policy)

    monkeypatch.setattr(AssistantEnv, "careful_label", scripted)
    monkeypatch.setattr(OveroptimisationAlarm, "observe", told)
    rl = {"kind": "rl", "reward": "reward_model", "steps": 12, "prompts_per_step": 4, "group_size": 4, "lr": 1e-2,
          "eval_every": 1, "eval_problems": 4, "checkpoint_every": 12, "gold_prompts": 4, "gold_samples": 2,
          "alarm_prompts": 8, "alarm_window": 1, "early_stop": True}
    r = tiny([SFT, RM, rl])
    summary = runner.run(r, runner.prepare_run_dir(r, tmp_path / "run"), show_progress=False)
    final = summary["stages"][2]["final"]
    alarm = [e for e in summary["evals"] if e["split"] == "alarm"]
    proxy = [e["metrics"]["proxy"] for e in alarm]
    expected = next(i for i in range(3, len(proxy)) if proxy[i] > proxy[0])
    assert final["alarm_step"] == expected and alarm[-1]["step"] == expected   # nothing ran after it
    assert [e["metrics"]["win_rate"] for e in alarm[:3]] == [0.5, 1.0, 0.0]
    assert final["kept_step"] == 1 and final["alarm_labels"] == 24 * (expected + 1)
    gold = {e["step"]: e["metrics"]["gold"] for e in summary["evals"] if e["split"] == "gold-prompts"}
    assert final["gold"] == gold[1]
    assert summary["stages"][2]["steps"] == 12       # the stage's budget; it ran `expected` of them


def test_reward_model_of_its_own_size_for_size_sweeps(tmp_path):
    import json

    small = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2, "intermediate_size": 32}
    r = tiny([{**RM, "source": "variants", "arch": small}])
    summary = runner.run(r, runner.prepare_run_dir(r, tmp_path / "run"), show_progress=False)
    member = tmp_path / "run" / summary["stages"][0]["reward_model_dir"] / "member-0" / "config.json"
    assert json.loads(member.read_text())["hidden_size"] == 16


def test_rm_decoder_picks_best_of_k_by_the_reward_model_in_eval_stage_and_cli(tmp_path):
    r = tiny([SFT, RM, {"kind": "eval", "policies": ["expert", "imitate"], "decoders": ["greedy", "rm@4", "oracle@4"],
                        "problems": 12}])
    summary = runner.run(r, runner.prepare_run_dir(r, tmp_path / "run"), show_progress=False)
    picked = {e["policy"]: e["metrics"]["accuracy"] for e in summary["evals"] if e["decoder"] == "rm@4"}
    oracle = {e["policy"]: e["metrics"]["accuracy"] for e in summary["evals"] if e["decoder"] == "oracle@4"}
    assert set(picked) == {"expert", "imitate"}                 # the expert's samples are ranked too
    assert all(picked[p] <= oracle[p] for p in picked)          # a pick can't beat "any of the k is right"
    from alphaloop.cli_eval import eval_run

    records, _ = eval_run(tmp_path / "run", ["test"], ["rm@2"], ["imitate"], problems=6)
    assert records[0]["decoder"] == "rm@2" and "accuracy" in records[0]["metrics"]


def test_rm_decoder_without_a_reward_model_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="rm@K picks by a reward model and needs an earlier reward_model stage"):
        tiny([SFT, {"kind": "eval", "decoders": ["rm@4"]}])
    from alphaloop.cli_eval import eval_run
    from alphaloop.errors import UserError

    r = tiny([SFT])
    runner.run(r, runner.prepare_run_dir(r, tmp_path / "run"), show_progress=False)
    with pytest.raises(UserError, match="--decoder rm@K: picks by a reward model"):
        eval_run(tmp_path / "run", ["test"], ["rm@2"], ["imitate"], problems=6)
