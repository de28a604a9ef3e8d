"""The in-training evaluation of the LM stages (`imitate`, `rl`): greedy accuracy on a fixed subset
of the test split, the same problems at every eval and in every stage of the run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alphaloop.evals.evaluate import eval_problem_seed, evaluate
from alphaloop.stages.context import StageContext
from alphaloop.stages.loop import Evaluate


def greedy_test_eval(ctx: StageContext, policy, count: int) -> Evaluate:
    """`evaluate(step)` for the stage loop: greedy accuracy of `policy` on `count` test problems,
    logged to metrics.jsonl and returned as one eval record (with the policy back in train mode)."""
    env = ctx.make_env("test")
    problems = env.problems("test", count, seed=eval_problem_seed(ctx.recipe.seed, "test"))

    def evaluate_at(step: int) -> tuple[list[dict], str]:
        policy.model.eval()
        record = evaluate(ctx.stage.name, policy, env, problems, ["greedy"], seed=0)[0]
        policy.model.train()
        accuracy = record["metrics"]["accuracy"]
        ctx.log(step, kind="eval", split=record["split"], decoder="greedy", accuracy=accuracy)
        return [{"stage": ctx.stage.name, "step": step, **record}], f"test greedy {accuracy:.1%}"

    return evaluate_at


def counting_samples(evaluate: Evaluate, drawn: Callable[[], int]) -> Evaluate:
    """`evaluate` whose records also carry `drawn()`, the samples the stage has drawn so far: the x axis
    on which sampling-based learners (rl, expert_iteration) are compared at equal samples."""

    def evaluate_at(step: int) -> tuple[list[dict], str]:
        records, note = evaluate(step)
        return [record | {"samples_drawn": drawn()} for record in records], note

    return evaluate_at


def samples_curve(stage: str, evals: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The report's curve of in-training greedy test accuracy against samples drawn (one line per stage)."""
    points = [{"stage": stage, "samples_drawn": r["samples_drawn"], "test_greedy_accuracy": r["metrics"]["accuracy"]}
              for r in evals if "samples_drawn" in r and r.get("split") == "test" and r.get("decoder") == "greedy"]
    return {"test_accuracy_vs_samples": points} if points else {}
