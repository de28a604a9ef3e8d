"""Test-time search decoders: oracle@k, best@k (value head), judge@k (self-judge), the compute curve."""

import math
from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError

from alphaloop.envs.base import Problem
from alphaloop.envs.registry import make_env
from alphaloop.episode import Episode
from alphaloop.evals.evaluate import (
    decoder_metrics,
    evaluate,
    evaluate_decoders,
    parse_decoder,
    samples_needed,
)
from alphaloop.policies.lm import LMArch, LMPolicy
from alphaloop.policies.tokenizer import build_char_tokenizer
from alphaloop.scorers import JudgeScorer, JudgeTemplate, ValueScorer
from alphaloop.scorers.judge import default_template
from alphaloop.search.best_of_n import best_index, best_of_n, best_of_n_accuracy, retry_index, select_best, select_retry
from alphaloop.stages.eval import EvalStageConfig, run_eval

torch.set_num_threads(1)
ARITH = "0123456789+-*=> "
TINY = LMArch(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64, max_seq_len=64)


def ep(success: bool, answer: str | None = None) -> Episode:
    return Episode(observations=["p"], actions=["c"], success=success, info={"answer": answer})


def tiny_policy(seed: int = 0, alphabet: str = ARITH) -> LMPolicy:
    policy = LMPolicy.build(TINY, alphabet, seed=seed)
    policy.model.eval()
    return policy


# ------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("spec, expected", [
    ("greedy", ("greedy", 1)), ("sample", ("sample", 1)), ("maj@8", ("maj", 8)), ("pass@4", ("pass", 4)),
    ("oracle@4", ("oracle", 4)), ("best@2", ("best", 2)), ("best-value@3", ("best", 3)),
    ("judge@16", ("judge", 16)), (" oracle@1 ", ("oracle", 1)),
])
def test_parse_decoder_accepts(spec, expected):
    assert parse_decoder(spec) == expected


@pytest.mark.parametrize("spec", ["oracle", "best@0", "judge@x", "best-val@2", "oracle@-1", "beam@2",
                                  "judge@", "best_value@2", "maj@1.5"])
def test_parse_decoder_rejects(spec):
    with pytest.raises(ValueError, match="decoder"):
        parse_decoder(spec)


def test_samples_needed_covers_curve():
    assert samples_needed(["greedy", "maj@4", "judge@2"]) == 4
    assert samples_needed(["greedy", "oracle@2"], curve=[1, 2, 8]) == 8
    assert samples_needed(["greedy"]) == 0


# ------------------------------------------------------------------------------- oracle@k


def test_oracle_at_k_on_hand_built_groups():
    problems = [Problem("a", "1"), Problem("b", "2"), Problem("c", "3")]
    groups = [[ep(False), ep(False), ep(True)], [ep(True), ep(False), ep(False)], [ep(False)] * 3]
    assert decoder_metrics("oracle", 1, problems, groups)["accuracy"] == pytest.approx(1 / 3)
    assert decoder_metrics("oracle", 2, problems, groups)["accuracy"] == pytest.approx(1 / 3)
    assert decoder_metrics("oracle", 3, problems, groups)["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="oracle@4: needs 4 samples"):
        decoder_metrics("oracle", 4, problems, groups)


def test_oracle_bounds_majority_vote():
    """Majority vote picks one of the k answers, so it can never beat 'any of the k is right'."""
    problems = [Problem("a", "7")]
    groups = [[ep(False, "5"), ep(True, "7"), ep(False, "5")]]
    assert decoder_metrics("maj", 3, problems, groups)["accuracy"] == 0.0
    assert decoder_metrics("oracle", 3, problems, groups)["accuracy"] == 1.0


# ------------------------------------------------------------------------------- best-of-n selection


def test_best_index_ties_and_nan():
    assert best_index([0.1, 0.9, 0.9]) == 1  # ties go to the first
    assert best_index([math.nan, -1.0, -2.0]) == 1  # NaN never wins
    assert best_index([math.nan, math.nan]) == 0
    assert best_index([-math.inf, -math.inf]) == 0
    with pytest.raises(ValueError, match="scores"):
        best_index([])
    assert best_of_n(["a", "b", "c"], [3.0, 1.0, 5.0], k=2) == "a"
    with pytest.raises(ValueError, match="k: expected 1 <= k <= 3"):
        best_of_n(["a", "b", "c"], [3.0, 1.0, 5.0], k=4)


def test_best_at_k_picks_max_score_candidate():
    problems = [Problem("a", "1"), Problem("b", "2")]
    groups = [[ep(False), ep(True), ep(False)], [ep(True), ep(False), ep(False)]]
    scores = [[0.1, 0.9, 0.5], [0.2, 0.1, 0.3]]
    # k=1: first samples (F, T); k=2: argmax picks index 1 (T) and 0 (T); k=3: index 1 (T) and 2 (F)
    assert [e.success for e in select_best(groups, scores, 2)] == [True, True]
    assert [best_of_n_accuracy(groups, scores, k) for k in (1, 2, 3)] == [0.5, 1.0, 0.5]
    for k, expected in ((1, 0.5), (2, 1.0), (3, 0.5)):
        assert decoder_metrics("best", k, problems, groups, scores)["accuracy"] == expected
        assert decoder_metrics("judge", k, problems, groups, scores)["accuracy"] == expected
    with pytest.raises(ValueError, match="scores"):
        decoder_metrics("best", 2, problems, groups)


def test_retry_at_k_takes_the_first_accepted_try_else_the_last():
    problems = [Problem("a", "1"), Problem("b", "2"), Problem("c", "3")]
    groups = [[ep(False), ep(True), ep(False)], [ep(True), ep(False), ep(True)], [ep(False), ep(False), ep(True)]]
    scores = [[0.2, 0.7, 0.9], [0.6, 0.9, 0.1], [0.1, float("nan"), 0.3]]
    assert retry_index([0.2, 0.7, 0.9]) == 1 and retry_index([0.1, float("nan")]) == 1
    assert retry_index([0.1, 0.4], threshold=0.3) == 1
    picked, tries = select_retry(groups, scores, 3)
    assert [e.success for e in picked] == [True, True, True] and tries == [2, 1, 3]
    metrics = decoder_metrics("retry", 2, problems, groups, scores)
    assert metrics["accuracy"] == pytest.approx(2 / 3) and metrics["tries"] == pytest.approx(5 / 3)
    assert parse_decoder("retry@4") == ("retry", 4)


# ------------------------------------------------------------------------------- value scorer


def test_value_scorer_reads_the_critic_before_the_final_token():
    policy = tiny_policy(1)
    head = policy.add_value_head()
    with torch.no_grad():
        head.weight.normal_(generator=torch.Generator().manual_seed(0))
        head.bias.fill_(0.25)
    eos = policy.eos_id
    episodes = [Episode(observations=["1+2="], prompt_ids=policy.prompt_ids("1+2="),
                        action_ids=policy.encode("3") + [eos]),
                Episode(observations=["12+34="], prompt_ids=policy.prompt_ids("12+34="),
                        action_ids=policy.encode("2+4=6 1+3=4 >46") + [eos])]
    scores = ValueScorer(policy, batch_size=2).score(episodes)
    for episode, got in zip(episodes, scores):
        ids = torch.tensor([episode.prompt_ids + episode.action_ids[:-1]])  # up to the state before EOS
        _, hidden = policy.model(ids, attention_mask=torch.ones_like(ids), return_hidden=True)
        expected = float(head(hidden[0, -1]).detach())
        assert got == pytest.approx(expected, abs=1e-5)
    assert scores[0] != pytest.approx(scores[1])
    # one row at a time (no padding) gives the same numbers
    assert ValueScorer(policy, batch_size=1).score(episodes) == pytest.approx(scores, abs=1e-5)


def test_value_scorer_reads_an_agent_transcript_before_its_last_action():
    policy = tiny_policy(1)
    head = policy.add_value_head()
    with torch.no_grad():
        head.weight.normal_(generator=torch.Generator().manual_seed(1))
    eos = policy.eos_id
    first, answer, last = policy.encode("1") + [eos], policy.encode("2+"), policy.encode("3") + [eos]
    episode = Episode(observations=["1+2="], prompt_ids=policy.prompt_ids("1+2="), action_ids=first + answer + last,
                      action_mask=[1] * len(first) + [0] * len(answer) + [1] * len(last))
    [got] = ValueScorer(policy).score([episode])
    ids = torch.tensor([episode.prompt_ids + first + answer])   # the state that writes the last action
    _, hidden = policy.model(ids, attention_mask=torch.ones_like(ids), return_hidden=True)
    assert got == pytest.approx(float(head(hidden[0, -1]).detach()), abs=1e-5)


def test_value_scorer_without_value_head_names_the_policy():
    with pytest.raises(ValueError, match="policy 'sft' has no value head"):
        ValueScorer(tiny_policy(), policy_name="sft")


# ------------------------------------------------------------------------------- judge scorer


def test_judge_template_fits_the_tokenizer():
    assert default_template(build_char_tokenizer(ARITH)) == JudgeTemplate(" =", "1", "0")
    letters = "abcdefghijklmnopqrstuvwxyz :0123456789+="
    assert default_template(build_char_tokenizer(letters)) == JudgeTemplate(" check:", " yes", " no")
    assert default_template(build_char_tokenizer("xy")) == JudgeTemplate("", "x", "y")
    with pytest.raises(ValueError, match="tokenizer"):
        default_template(build_char_tokenizer("x"))


def test_judge_scores_are_finite_log_odds():
    policy = tiny_policy(2)
    episodes = [Episode(observations=["1+2="], actions=["3"]),
                Episode(observations=["1+2="], prompt_ids=policy.prompt_ids("1+2="),
                        action_ids=policy.encode("4") + [policy.eos_id])]
    judge = JudgeScorer(policy, batch_size=1)
    scores = judge.score(episodes)
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)
    # by hand: log p("1" | context) - log p("0" | context) for the first candidate
    context = torch.tensor([policy.prompt_ids("1+2=") + policy.encode("3 =")])
    with torch.no_grad():
        logp = torch.log_softmax(policy.model(context, attention_mask=torch.ones_like(context))[0, -1], -1)
    one, zero = policy.encode("1")[0], policy.encode("0")[0]
    assert scores[0] == pytest.approx(float(logp[one] - logp[zero]), abs=1e-4)
    assert JudgeScorer(policy, batch_size=2).score(episodes) == pytest.approx(scores, abs=1e-4)


def test_judge_multi_token_verdicts_sum_token_logprobs():
    policy = tiny_policy(5, alphabet="abcdefghijklmnopqrstuvwxyz :0123456789+=")
    judge = JudgeScorer(policy)
    assert judge.template == JudgeTemplate(" check:", " yes", " no")
    score = judge.score([Episode(observations=["1+2="], actions=["3"])])[0]
    context = policy.prompt_ids("1+2=") + policy.encode("3 check:")

    def verdict(text: str) -> float:
        ids = torch.tensor([context + policy.encode(text)])
        with torch.no_grad():
            return float(policy.sequence_logprobs(ids, torch.ones_like(ids))[0, len(context) - 1:].sum())

    assert score == pytest.approx(verdict(" yes") - verdict(" no"), abs=1e-4)
    # the one-forward path for one-token verdicts agrees with the general path
    digits = JudgeScorer(tiny_policy(6))
    episodes = [Episode(observations=["1+2="], actions=[a]) for a in ("3", "45 >4")]
    contexts = [digits._context(e) for e in episodes]
    general = [y - n for y, n in zip(digits._verdict_logprobs(contexts, digits.yes_ids),
                                     digits._verdict_logprobs(contexts, digits.no_ids))]
    assert digits.score(episodes) == pytest.approx(general, abs=1e-4)


def test_judge_prefers_what_it_was_trained_to_accept():
    """A few steps of imitation on `<q><a> =1` (right) and `<q><a> =0` (wrong) make the judge rank
    the right answer first, though the candidates differ only in the answer digit."""
    torch.manual_seed(0)
    policy = LMPolicy.build(TINY, ARITH, seed=3)
    data = [("1+2=", "3", "1"), ("1+2=", "4", "0"), ("2+2=", "4", "1"), ("2+2=", "5", "0")]
    rows = [policy.prompt_ids(q) + policy.encode(f"{a} ={v}") for q, a, v in data]
    ids = torch.tensor(rows)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    policy.model.train()
    for _ in range(60):
        loss = -policy.sequence_logprobs(ids, torch.ones_like(ids))[:, -1].mean()  # the verdict token
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    judge = JudgeScorer(policy)
    scores = judge.score([Episode(observations=[q], actions=[a]) for q, a, _ in data])
    assert scores[0] > 0 > scores[1] and scores[2] > 0 > scores[3]
    groups = [[ep(False), ep(True)], [ep(True), ep(False)]]
    assert best_of_n_accuracy(groups, [[scores[1], scores[0]], [scores[2], scores[3]]], 2) == 1.0


# ------------------------------------------------------------------------------- evaluate + curve


def test_expert_curve_and_skipped_scored_decoders():
    env = make_env("arithmetic", split="test")
    problems = env.problems("test", 12, seed=0)
    decoders = ["maj@4", "oracle@4", "best@4", "judge@2"]
    records, points = evaluate_decoders("expert", None, env, problems, decoders, seed=1, curve=[1, 2, 4])
    by_decoder = {r["decoder"]: r for r in records}
    assert by_decoder["oracle@4"]["upper_bound"] is True and "upper_bound" not in by_decoder["maj@4"]
    assert by_decoder["best@4"]["metrics"] == {} and "expert" in by_decoder["best@4"]["skipped"]
    assert "skipped" in by_decoder["judge@2"]
    assert [(p["decoder"], p["k"]) for p in points] == [(d, k) for k in (1, 2, 4) for d in ("maj", "oracle")]
    for p in points:
        assert set(p) - {"upper_bound"} == {"policy", "split", "decoder", "k", "accuracy"}
        assert p["policy"] == "expert" and p["split"] == "test" and 0 <= p["accuracy"] <= 1
    oracle = [p["accuracy"] for p in points if p["decoder"] == "oracle"]
    assert oracle == sorted(oracle) and oracle[-1] == by_decoder["oracle@4"]["metrics"]["accuracy"]
    maj4 = next(p for p in points if p["decoder"] == "maj" and p["k"] == 4)
    assert maj4["accuracy"] == by_decoder["maj@4"]["metrics"]["accuracy"] <= oracle[-1]


def test_policy_decoders_share_one_pass():
    env = make_env("arithmetic", split="test")
    problems = env.problems("test", 4, seed=0)
    policy = tiny_policy(4)
    with pytest.raises(ValueError, match="policy 'sft' has no value head"):
        evaluate_decoders("sft", policy, env, problems, ["best@2"], seed=0)
    head = policy.add_value_head()
    with torch.no_grad():
        head.weight.normal_(generator=torch.Generator().manual_seed(1))
    decoders = ["greedy", "maj@2", "best-value@2", "judge@2", "oracle@2", "pass@2"]
    records, points = evaluate_decoders("rl", policy, env, problems, decoders, seed=5, curve=[1, 2],
                                        batch_size=3)
    assert [r["decoder"] for r in records] == decoders
    assert all(0 <= r["metrics"]["accuracy"] <= 1 and r["metrics"]["n"] == 4 for r in records)
    assert [(p["decoder"], p["k"]) for p in points] == [(d, k) for k in (1, 2) for d in
                                                        ("maj", "best", "judge", "oracle")]
    # every family at k=1 is the first sample's accuracy (same samples), maj aside (needs a parsed answer)
    first = {p["accuracy"] for p in points if p["k"] == 1 and p["decoder"] != "maj"}
    assert len(first) == 1
    # the existing entry point returns the same records
    assert evaluate("rl", policy, env, problems, decoders, seed=5, batch_size=3) == records


def test_eval_stage_config_curve():
    cfg = EvalStageConfig(kind="eval", decoders=["best-value@4", "oracle@8"], curve=[4, 1, 2, 2])
    assert cfg.curve == [1, 2, 4]
    with pytest.raises(ValidationError, match="curve"):
        EvalStageConfig(kind="eval", decoders=["greedy", "pass@4"], curve=[1, 2])
    with pytest.raises(ValidationError, match="sample counts"):
        EvalStageConfig(kind="eval", decoders=["maj@4"], curve=[0, 2])
    with pytest.raises(ValidationError, match="unknown decoder"):
        EvalStageConfig(kind="eval", decoders=["oracle"])


def test_run_eval_returns_test_time_compute_curve():
    ctx = SimpleNamespace(
        recipe=SimpleNamespace(seed=0), latest_policy_name=lambda: None, policy_dir=lambda name: None,
        make_env=lambda split: make_env("arithmetic", split=split), seed=lambda *parts: 7,
        new_progress_task=lambda total: 0, progress=SimpleNamespace(update=lambda *a, **k: None),
    )
    cfg = EvalStageConfig(kind="eval", name="final", policies=["expert", "latest"],
                          splits=["test", "heldout"], decoders=["greedy", "maj@4", "oracle@4", "judge@4"],
                          problems=6, curve=[1, 4])
    result = run_eval(ctx, cfg)
    assert len(result["evals"]) == 2 * 4 and all(r["stage"] == "final" for r in result["evals"])
    points = result["curves"]["test_time_compute"]
    assert [(p["split"], p["decoder"], p["k"]) for p in points] == [
        (s, d, k) for s in ("test", "heldout") for k in (1, 4) for d in ("maj", "oracle")]
    assert "curves" not in run_eval(ctx, cfg.model_copy(update={"curve": None}))
