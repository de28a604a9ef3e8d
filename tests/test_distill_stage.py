"""The distill stage end to end: a smaller student catches up with its teacher on 1-2 digit addition
(fixed seed), a kill -9 mid-stage resumes to the same summary, and bad settings name their field."""

import json

import pytest

from alphaloop import runner
from alphaloop.errors import UserError
from alphaloop.policies.lm import build_tiny_hf_model
from alphaloop.recipe import dumps_toml, validate_recipe

KNOBS = {"digits_min": 1, "digits_max": 2, "misconception_rate": 0.0}
TEACHER = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 4, "intermediate_size": 192}
STUDENT = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 4, "intermediate_size": 96}
IMITATE = {"kind": "imitate", "steps": 400, "batch_size": 32, "lr": 3e-3, "warmup_steps": 10, "eval_every": 400,
           "eval_problems": 100, "checkpoint_every": 1000}


def recipe_data(stages, pretrained=None, name="distill-tiny"):
    policy = {"arch": TEACHER} | ({"pretrained": str(pretrained)} if pretrained else {})
    return {"name": name, "seed": 0, "threads": 1, "policy": policy,
            "env": {"name": "arithmetic", "knobs": KNOBS}, "stages": stages}


def run(data, out):
    recipe = validate_recipe(data)
    return runner.run(recipe, runner.prepare_run_dir(recipe, out), show_progress=False)


def final_accuracy(summary, stage):
    return [e for e in summary["evals"] if e["stage"] == stage][-1]["metrics"]["accuracy"]


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    """A teacher imitated from the env's expert (64 wide, 2 layers, 108k parameters), then a fresh
    student with two thirds of its parameters (a narrower MLP) distilled from it: half of each batch
    the teacher's samples, half the student's own, forward KL (it learns fastest from scratch)."""
    out = tmp_path_factory.mktemp("taught") / "run"
    distill = {"kind": "distill", "student": STUDENT, "mode": "mixed", "divergence": "forward_kl", "steps": 500,
               "batch_size": 64, "lr": 5e-3, "warmup_steps": 10, "eval_every": 500, "eval_problems": 100,
               "checkpoint_every": 1000}
    return run(recipe_data([IMITATE, distill]), out), out


@pytest.mark.slow   # about a minute: a teacher has to learn addition first (make test-slow)
def test_a_smaller_student_matches_its_teacher(taught):
    summary, out = taught
    teacher, student = final_accuracy(summary, "imitate"), final_accuracy(summary, "distill")
    final = summary["stages"][1]["final"]
    assert teacher >= 0.6, teacher                       # the teacher learned something worth distilling
    assert student >= teacher - 0.05, (teacher, student)  # measured: teacher 85%, student 84%
    assert final["test_greedy_accuracy"] == student
    assert final["student_parameters"] < 0.7 * final["teacher_parameters"]
    assert final["parameter_ratio"] == pytest.approx(final["student_parameters"] / final["teacher_parameters"],
                                                     abs=1e-6)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logged if r["stage"] == "distill" and "loss" in r]
    assert len(steps) == 500
    assert {"loss", "reverse_kl", "lr", "grad_norm", "tokens_per_s", "teacher_accuracy"} <= set(steps[0])
    assert steps[-1]["reverse_kl"] < steps[0]["reverse_kl"] / 4    # the student's distribution closes in
    assert (out / summary["stages"][1]["policy_dir"] / "model.safetensors").is_file()


def test_resume_after_kill_9_matches(tmp_path, kill_then_resume):
    """Searching teacher (maj@4) and the student's own samples in one batch, killed after its first checkpoint.
    The teacher is briefly imitated: resuming needs a teacher, not a good one."""
    run(recipe_data([dict(IMITATE, steps=40, eval_every=40)], name="teacher"), tmp_path / "teacher")
    teacher_dir = tmp_path / "teacher" / "stages" / "0-imitate" / "policy"
    distill = {"kind": "distill", "teacher": "pretrained", "teacher_decoder": "maj@4", "student": STUDENT,
               "mode": "mixed", "on_policy_fraction": 0.25, "divergence": "jsd", "steps": 24, "batch_size": 8,
               "eval_every": 12, "eval_problems": 20, "checkpoint_every": 4}
    data = recipe_data([distill], pretrained=teacher_dir, name="distill-resume")
    reference = run(data, tmp_path / "ref")
    (tmp_path / "recipe.toml").write_text(dumps_toml(data))
    kill_then_resume(tmp_path / "recipe.toml", tmp_path / "killed", "0-distill")
    assert json.loads((tmp_path / "killed" / "summary.json").read_text()) == reference
    logged = [json.loads(line) for line in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < r["teacher_kept_frac"] <= 1 for r in logged if "teacher_kept_frac" in r)


@pytest.mark.parametrize("stage, field, message", [
    ({"teacher": "nope"}, "teacher", "'nope' is not an earlier stage that trains a policy"),
    ({"teacher_decoder": "pass@4"}, "teacher_decoder", "expected 'sample', 'greedy' or 'maj@K'"),
    ({"teacher_decoder": "maj@"}, "teacher_decoder", "expected 'sample', 'greedy' or 'maj@K'"),
    ({"student": STUDENT, "student_from": "imitate"}, "student_from", "either \\[stages.student\\]"),
    ({"student_from": "nope"}, "student_from", "'nope' is not an earlier stage"),
    ({"loss": "nll", "mode": "on_policy"}, "loss", "needs mode = 'off_policy'"),
    ({"divergence": "jsd", "jsd_beta": 1.0}, "jsd_beta", "less than 1"),
])
def test_bad_settings_name_their_field(stage, field, message):
    with pytest.raises(UserError, match=rf"stages\.1\.{field}: .*{message}"):
        validate_recipe(recipe_data([IMITATE, {"kind": "distill", **stage}]))


def test_a_teacher_is_needed_and_must_share_the_students_vocabulary(tmp_path):
    with pytest.raises(UserError, match=r"stages\.0\.teacher: distillation needs a trained teacher"):
        validate_recipe(recipe_data([{"kind": "distill"}]))
    # A teacher over another alphabet than the env's: the fresh student's tokenizer cannot be the teacher's.
    other = build_tiny_hf_model(tmp_path / "other", alphabet="0123456789+= ")
    with pytest.raises(UserError, match=r"student: its tokenizer .* differs from the teacher's"):
        run(recipe_data([{"kind": "distill", "teacher": "pretrained", "student": STUDENT, "steps": 1}],
                        pretrained=other), tmp_path / "run")
