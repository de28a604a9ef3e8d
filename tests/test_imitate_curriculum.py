"""The imitate stage's curriculum (an env knob stepped through easier settings first) and randomised
position ids: levels move on when mastered, batches follow the level, state survives a checkpoint,
and bad settings name their field."""

import json

import pytest

from alphaloop import runner
from alphaloop.errors import UserError
from alphaloop.recipe import validate_recipe
from alphaloop.stages import curriculum as curriculum_module

ARCH = {"hidden_size": 32, "num_layers": 1, "num_heads": 4, "num_kv_heads": 4, "intermediate_size": 64}
KNOBS = {"digits_min": 1, "digits_max": 3, "misconception_rate": 0.0, "answer_format": "reversed"}


def recipe_data(imitate: dict, knobs: dict = KNOBS) -> dict:
    stage = {"kind": "imitate", "steps": 6, "batch_size": 8, "eval_every": 2, "eval_problems": 10,
             "checkpoint_every": 2} | imitate
    return {"name": "curriculum", "seed": 0, "threads": 1, "policy": {"arch": ARCH},
            "env": {"name": "arithmetic", "knobs": knobs}, "stages": [stage]}


def run(data, out):
    recipe = validate_recipe(data)
    return runner.run(recipe, runner.prepare_run_dir(recipe, out), show_progress=False)


def test_levels_move_on_when_mastered_and_batches_follow(tmp_path, monkeypatch):
    verdicts = iter([1.0, 0.5, 0.97])   # mastered at step 2, not at 4, mastered at 6 (the last level after it)
    monkeypatch.setattr(curriculum_module, "evaluate",
                        lambda *a, **k: [{"metrics": {"accuracy": next(verdicts)}}])
    widest: dict[int, int] = {}   # step -> digits_max of the env its batch came from
    import alphaloop.stages.imitate as imitate

    real = imitate.demonstrations

    def spying(env, policy, rng, size):
        episodes = real(env, policy, rng, size)
        widest[len(widest)] = env.config.digits_max
        return episodes

    monkeypatch.setattr(imitate, "demonstrations", spying)
    curriculum = {"knob": "digits_max", "values": [1, 2, 3], "advance_at": 0.95, "problems": 5}
    summary = run(recipe_data({"curriculum": curriculum}), tmp_path / "run")
    final = summary["stages"][0]["final"]
    assert final["curriculum_final_value"] == 3
    assert final["curriculum_reached_at_step"] == {"1": 0, "2": 2, "3": 6}
    assert [widest[s] for s in range(6)] == [1, 1, 2, 2, 2, 2]   # the level after the eval at step 2
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    levels = [r for r in logged if r.get("kind") == "curriculum"]
    assert [(r["step"], r["value"], r.get("advanced_to")) for r in levels] == [(2, 1, 2), (4, 2, None), (6, 2, 3)]


def test_a_checkpoint_keeps_the_level(tmp_path, monkeypatch):
    splits = []

    def scored(stage, policy, env, problems, decoders, seed):
        splits.append((env.split, env.config.digits_max, max(p.meta["digits"] for p in problems)))
        return [{"metrics": {"accuracy": 1.0}}]

    monkeypatch.setattr(curriculum_module, "evaluate", scored)
    curriculum = {"knob": "digits_max", "values": [1, 2, 3], "problems": 5, "split": "train"}
    run(recipe_data({"curriculum": curriculum, "steps": 4}), tmp_path / "run")
    assert splits == [("train", 1, 1), ("train", 2, 2)]   # the taught setting's problems
    import torch

    state = torch.load(tmp_path / "run" / "stages" / "0-imitate" / "checkpoints" / "step-0000004" / "trainer.pt",
                       weights_only=False)
    assert state["curriculum"]["level"] == 2 and len(state["curriculum"]["history"]) == 2
    from alphaloop.stages.context import StageContext

    class Ctx(StageContext):
        def __init__(self):
            self.recipe, self.index = validate_recipe(recipe_data({})), 0

    restored = curriculum_module.Curriculum(Ctx(), curriculum_module.CurriculumConfig(**curriculum),
                                            state["curriculum"])
    assert restored.value == 3 and restored.env.config.digits_max == 3


@pytest.mark.parametrize("imitate,knobs,needle", [
    ({"curriculum": {"knob": "digits", "values": [1, 3]}}, KNOBS, "stages.0.curriculum.knob: env 'arithmetic' has no"),
    ({"curriculum": {"knob": "digits_max", "values": [1, 2]}}, KNOBS, "stages.0.curriculum.values: the last value"),
    ({"random_positions": 64}, KNOBS | {"positions": "coupled"}, "stages.0.random_positions: the policy has its own"),
    ({"random_positions": 4}, KNOBS, "stages.0.random_positions: a row has"),
])
def test_bad_settings_name_their_field(tmp_path, imitate, knobs, needle):
    with pytest.raises(UserError, match=needle):
        run(recipe_data(imitate, knobs), tmp_path / "run")


def test_randomised_positions_train_and_leave_a_plain_policy(tmp_path):
    summary = run(recipe_data({"random_positions": 64, "steps": 2}), tmp_path / "run")
    config = json.loads((tmp_path / "run" / summary["stages"][0]["policy_dir"] / "config.json").read_text())
    assert "alphaloop_positions" not in config   # inference keeps the default ids: a plain Llama
