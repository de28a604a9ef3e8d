"""The structure stays as designed: no import cycles inside alphaloop/, imports only point down the
layer table of docs/architecture.md, a stage is one file plus one line in the table, and a
board-game run never imports transformers."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field

from alphaloop import runner
from alphaloop.errors import UserError
from alphaloop.recipe import validate_recipe
from alphaloop.specs import StageConfig
from alphaloop.stages import STAGES, Stage, StageContext

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "alphaloop"


def module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that `name` imports anywhere in its file (function bodies and TYPE_CHECKING included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # A module importing its own package's face (its __init__) is not an edge.
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer_table() -> list[tuple[str, list[str]]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"<!-- layers:begin -->\s*```\n(.*?)```\s*<!-- layers:end -->", text, re.S)
    assert block, "docs/architecture.md must keep its layer table between the layers:begin/end markers"
    return [(line.split()[0], line.split()[1:]) for line in block.group(1).splitlines() if line.strip()]


def layer_of(module: str, table: list[tuple[str, list[str]]]) -> int | None:
    for index, (_, patterns) in enumerate(table):
        for pattern in patterns:
            if module == pattern or (pattern.endswith(".*") and (module + ".").startswith(pattern[:-1])):
                return index
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_reader_sees_imports_in_function_bodies():
    graph = import_graph()
    assert "alphaloop.stages" in graph["alphaloop.recipe"]            # a top-level import
    assert "alphaloop.policies.lm" in graph["alphaloop.stages.imitate"]  # one inside run_imitate


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_only_point_down_the_layers():
    table = layer_table()
    graph = import_graph()
    unplaced = sorted(m for m in graph if m != "alphaloop" and layer_of(m, table) is None)
    assert not unplaced, f"modules missing from the layer table in docs/architecture.md: {unplaced}"
    upward = []
    for module, targets in graph.items():
        if module == "alphaloop":  # the package face re-exports Episode
            continue
        for target in targets:
            if target != "alphaloop" and layer_of(target, table) < layer_of(module, table):
                upward.append(f"{module} ({table[layer_of(module, table)][0]}) imports {target} "
                              f"({table[layer_of(target, table)][0]})")
    assert not upward, "imports pointing up the layers:\n" + "\n".join(sorted(upward))


def test_layer_check_catches_an_upward_import():
    table = layer_table()
    assert layer_of("alphaloop.stages.rl", table) < layer_of("alphaloop.learners.rl_update", table)
    assert layer_of("alphaloop.games.match", table) > layer_of("alphaloop.search.players", table)
    assert layer_of("alphaloop.errors", table) == len(table) - 1


def test_no_file_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these by job: {long}"


def test_stage_table_is_what_the_recipe_and_runner_read():
    assert set(STAGES) == {"imitate", "rl", "reward_model", "dpo", "expert_iteration", "best_of_n", "distill", "eval",
                           "game_imitate", "alphazero", "game_eval"}
    for kind, stage in STAGES.items():
        assert stage.config.model_fields["kind"].annotation == Literal[kind]
    with pytest.raises(UserError, match=r"unknown stage kind 'distil'; expected one of imitate, rl, reward_model"):
        validate_recipe({"stages": [{"kind": "distil"}]})


# ------------------------------------------------------------------ the toy stage of docs/architecture.md

class CountStageConfig(StageConfig):
    kind: Literal["count"]
    up_to: int = Field(3, ge=1, description="how far to count")


def run_count(ctx: StageContext, cfg: CountStageConfig) -> dict[str, Any]:
    for step in range(cfg.up_to):
        ctx.log(step + 1, count=step + 1)
    return {"steps": cfg.up_to, "final": {"count": cfg.up_to}}


def test_a_new_stage_is_one_file_and_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(STAGES, "count", Stage(CountStageConfig, run_count))
    recipe = validate_recipe({"name": "toy", "stages": [{"kind": "count", "up_to": 4}, {"kind": "count"}]})
    assert [s.name for s in recipe.stages] == ["count", "count1"]
    with pytest.raises(UserError, match=r"stages\.0\.up_to"):
        validate_recipe({"stages": [{"kind": "count", "up_to": 0}]})
    with pytest.raises(UserError, match=r"stages\.0\.upto: unknown key"):
        validate_recipe({"stages": [{"kind": "count", "upto": 2}]})
    with pytest.raises(UserError, match=r"expected one of .*count"):
        validate_recipe({"stages": [{"kind": "counter"}]})

    run_dir = runner.prepare_run_dir(recipe, tmp_path / "run")
    summary = runner.run(recipe, run_dir, show_progress=False)
    assert summary["status"] == "complete"
    assert [s["final"] for s in summary["stages"]] == [{"count": 4}, {"count": 3}]
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["count"] for r in logged] == [1, 2, 3, 4, 1, 2, 3]
    assert 'kind = "count"' in (run_dir / "recipe.toml").read_text()  # a stage's own fields are saved too
    assert "up_to = 4" in (run_dir / "recipe.toml").read_text()


def test_a_board_game_run_never_imports_transformers(tmp_path):
    script = f"""
import sys
from alphaloop import runner
from alphaloop.recipe import load_recipe
recipe = load_recipe({str(ROOT / "recipes" / "tictactoe-smoke.toml")!r},
                     ["stages.0.steps=2", "stages.0.games=2", "stages.1.rounds=1", "stages.1.games_per_round=2",
                      "stages.1.train_steps=1", "stages.2.eval_games=2"])
runner.run(recipe, runner.prepare_run_dir(recipe, {str(tmp_path / "run")!r}), show_progress=False)
print("transformers" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
