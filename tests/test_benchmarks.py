"""The paired benchmarks compare like with like: both sides of each comparison start from the same
weights, see the same prompts and produce the same completions where sampling is taken out
(greedy), so equal lengths. Tiny sizes; TRL and OpenSpiel parts are skipped where not installed."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import _grpo  # noqa: E402
import rollout  # noqa: E402

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory) -> Path:
    """A tiny quickstart policy after 2 steps of the imitate stage, as the benchmarks train theirs."""
    cache = tmp_path_factory.mktemp("bench-cache")
    path = _common.imitation_policy(steps=2, threads=1, arch=TINY, cache=cache)
    assert _common.imitation_policy(steps=2, threads=1, arch=TINY, cache=cache) == path  # cached, not retrained
    return path


def test_machine_line_names_the_cpu():
    line = _common.machine()
    assert "AMX" in line and "AVX512-BF16" in line and "torch" in line


def test_headline_is_the_quickstart_rl_stage(policy_dir):
    q = _common.quickstart()
    setup = _grpo.headline(policy_dir)
    assert (setup.prompts, setup.group, setup.lr) == (q.prompts, q.group, q.rl_lr) == (16, 8, 1e-4)
    assert setup.max_new_tokens == 31  # the rl stage's default for the quickstart env: max_completion_chars + 1
    recipe = _grpo.alphaloop_recipe(setup, threads=1, steps=1)
    assert recipe.policy.pretrained == str(policy_dir)
    assert recipe.stages[0].max_new_tokens == setup.max_new_tokens


def test_both_sides_load_the_same_weights(policy_dir):
    sides = rollout.load_sides(policy_dir, batch=4)
    ids, mask = sides.ids, sides.mask
    with torch.no_grad():
        ours = sides.policy.model(ids, attention_mask=mask)
        theirs = sides.hf(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4)


@pytest.mark.parametrize("stop", ["eos", "fixed"])
def test_rollout_sides_match_greedy(policy_dir, stop):
    """Greedy, the sampler and HF generate produce the same tokens, so the same lengths; at `fixed`
    every row has exactly `new` tokens on both sides."""
    sides = rollout.load_sides(policy_dir, batch=6, seed=1)
    new = 12
    ours = rollout.ours(sides, new, stop, seed=0, temperature=0.0)
    theirs = rollout.hf(sides, new, stop, seed=0, temperature=0.0)
    assert [len(c) for c in ours] == [len(c) for c in theirs]
    if stop == "eos":
        assert ours == theirs
    else:
        assert all(len(c) == new for c in ours)


def test_trl_side_gets_the_rl_stages_prompts_as_our_tokens(policy_dir, monkeypatch):
    """TRL's dataset (in order, unshuffled) holds exactly the problems the rl stage draws at each
    step, and TRL's tokenization of them is our prompt ids."""
    from transformers import AutoTokenizer

    import alphaloop.stages.rl as rl_stage
    from alphaloop.policies.lm import LMPolicy

    setup = _grpo.Setup("tiny", str(policy_dir), prompts=2, group=2, max_new_tokens=4, lr=1e-4, mask_truncated=True)
    drawn = []
    real = rl_stage.policy_episodes

    def recording(policy, env, problems, *args, **kwargs):
        drawn.extend(p.prompt for p in problems)
        return real(policy, env, problems, *args, **kwargs)

    monkeypatch.setattr(rl_stage, "policy_episodes", recording)
    stats = _grpo.alphaloop_steps(setup, threads=1, steps=2)
    assert len(stats) == 2 and all(s.completions == 4 and s.mean_length <= 4 for s in stats)
    problems = _grpo.rl_problems(setup, steps=2)
    assert [p.prompt for p in problems] == drawn
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    policy = LMPolicy.load(policy_dir)
    for p in problems:
        assert tokenizer(text=[_grpo.trl_prompt(tokenizer, p.prompt)])["input_ids"][0] == policy.prompt_ids(p.prompt)


@pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="TRL is a benchmark-only dependency")
def test_trl_config_and_steps_mirror_ours(policy_dir, tmp_path):
    setup = _grpo.Setup("tiny", str(policy_dir), prompts=2, group=2, max_new_tokens=4, lr=1e-4, mask_truncated=True)
    config = _grpo.trl_config(setup, threads=1, steps=1, seed=0, output_dir=str(tmp_path))
    assert config.max_completion_length == setup.max_new_tokens and config.num_generations == setup.group
    assert config.per_device_train_batch_size == setup.prompts * setup.group and not config.shuffle_dataset
    assert config.mask_truncated_completions == setup.mask_truncated and config.beta == 0.0
    theirs = _grpo.trl_steps(setup, threads=1, steps=1)
    assert len(theirs) == 1 and theirs[0].completions == 4 and 1 <= theirs[0].mean_length <= 4


def test_overhead_row_uses_an_untrained_policy_on_both_sides(tmp_path):
    path = _grpo.untrained_policy(tmp_path / "untrained")
    setup = _grpo.overhead(path)
    assert (setup.prompts, setup.group, setup.max_new_tokens) == (8, 8, 8)
    assert _grpo.alphaloop_recipe(setup, 1, 1).policy.pretrained == setup.policy_dir == str(path)


def test_selfplay_openspiel_side_mirrors_ours():
    import selfplay

    args = selfplay.openspiel_args(sims=7, games_in_flight=5, seconds=1.0)
    value = dict(zip(args[::2], args[1::2]))
    assert value["--sims"] == "7" and value["--games"] == "5"
    assert value["--temperature-drop"] == str(selfplay.stage_default("temperature_moves"))
    mlp = selfplay.NETS["openspiel-mlp"]
    assert (value["--model"], value["--width"], value["--depth"]) == ("mlp", str(mlp.hidden), str(mlp.blocks))
    r = selfplay.bench("openspiel-mlp", width=2, sims=2, cache=0, seed=0)
    assert r["games"] == 2 and r["positions"] >= 2 * 7  # connect four: at least 7 moves a game


OPENSPIEL_PYTHON = os.environ.get("OPENSPIEL_PYTHON", str(BENCH.parent / ".venv-openspiel" / "bin" / "python"))


@pytest.mark.skipif(not Path(OPENSPIEL_PYTHON).is_file(), reason="no OpenSpiel venv (make bench-openspiel)")
def test_openspiel_actor_keeps_games_in_flight():
    import selfplay

    out = selfplay.openspiel_rate(OPENSPIEL_PYTHON, sims=2, games_in_flight=3, seconds=0.0)
    assert out["games"] == 3 and out["games_in_flight"] == 3 and out["states"] >= 3 * 7


def test_contention_busy_process_is_started_and_stopped():
    import contention

    with contention.busy_process(1) as procs:
        assert len(procs) == 1 and procs[0].poll() is None  # spinning
    assert procs[0].poll() is not None  # stopped and reaped


def test_agent_actions_scores_every_expert_action_by_command(tmp_path, monkeypatch, capsys):
    """The per-command diagnosis reads every expert action of every task (untrained policy: counts only)."""
    import agent_actions

    from alphaloop.envs import make_env
    from alphaloop.policies.lm import LMArch, LMPolicy

    LMPolicy.build(LMArch(**TINY, max_seq_len=256), make_env("invoices").alphabet, seed=0).save(tmp_path / "p")
    monkeypatch.setattr(sys, "argv", ["agent_actions", str(tmp_path / "p"), "--env", "invoices", "--knobs",
                                      "memory=3", "--tasks", "3"])
    agent_actions.main()
    lines = capsys.readouterr().out.splitlines()
    counts = {line.split()[0]: int(line.split("/")[1].split("=")[0]) for line in lines[1:] if "=" in line
              and not line.strip().startswith("miss")}
    assert counts["open"] >= 4 and counts["list"] >= 3 and counts["submit"] == 3   # 3 tasks, 1+ documents each
    assert sum(counts.values()) == int(lines[0].split(":")[1].split()[0])


def test_agent_templates_splits_the_tasks_by_template(tmp_path, monkeypatch, capsys):
    """Per-template rows cover every task once (untrained policy: counts only)."""
    import agent_templates

    from alphaloop.envs import make_env
    from alphaloop.policies.lm import LMArch, LMPolicy

    LMPolicy.build(LMArch(**TINY, max_seq_len=256), make_env("shell").alphabet, seed=0).save(tmp_path / "p")
    monkeypatch.setattr(sys, "argv", ["agent_templates", str(tmp_path / "p"), "--knobs", "memory=2", "--tasks", "6",
                                      "--samples", "2", "--split", "heldout"])
    agent_templates.main()
    out = capsys.readouterr().out
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| ")][1:]
    *templates, total = rows
    assert {row[1].strip() for row in templates} <= {"clean", "sort", "rename", "fix"}
    assert sum(int(row[2]) for row in templates) == 6 and total[1].strip() == "all" and int(total[2]) == 6
    errors = int(out.split("tool errors: ")[1].split()[0])
    assert "in 12 sampled episodes" in out and errors >= 0


def test_heap_growth_runs_both_sides_in_their_own_process():
    """Each side is a fresh process that trains, trims (or not) and reports its memory."""
    import heap_growth

    kept, trimmed = heap_growth.side(False, 2, 1, 1), heap_growth.side(True, 10, 1, 1)
    for report in (kept, trimmed):
        assert report["step_s"] > 0 and report["peak"] >= report["final"] > 100 * 2 ** 20
