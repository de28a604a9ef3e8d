"""Bad input through the real CLI (a subprocess per row): every row must exit with code 2, print a
message naming the offending field or value, print no traceback, and leave the files it was given
and the directory it ran in exactly as they were (no half-made run directory, no changed file).

Add a row whenever a new kind of mistake is found."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "recipes" / "smoke.toml")
GAME = str(ROOT / "recipes" / "tictactoe-smoke.toml")
C4 = str(ROOT / "recipes" / "connect4.toml")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="100")
    return subprocess.run([sys.executable, "-m", "alphaloop.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def write(root: Path, name: str, text: str | bytes) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def run_dir(root: Path, recipe: str) -> str:
    """A run directory of `recipe` with nothing trained yet (enough for `eval` to check its arguments)."""
    from alphaloop.recipe import load_recipe, recipe_to_toml

    return str(Path(write(root, f"{Path(recipe).stem}-run/recipe.toml", recipe_to_toml(load_recipe(recipe)))).parent)


def game_run_dir(root: Path) -> str:
    return run_dir(root, GAME)


BROKEN = "def broken(:\n"

# (id, setup(tmp) -> args, text the message must contain)
ROWS = [
    # 1. checked too late: cross-references and stage constraints, now found when the recipe loads
    ("eval-unknown-policy", lambda t: ["run", SMOKE, "--set", 'stages.2.policies=["expert", "nope"]'],
     "stages.2.policies: 'nope'"),
    ("eval-pretrained-without-pretrained", lambda t: ["run", SMOKE, "--set", 'stages.2.policies=["pretrained"]'],
     "stages.2.policies: 'pretrained'"),
    ("game-eval-unknown-policy", lambda t: ["run", GAME, "--set", 'stages.2.policies=["nope"]'],
     "stages.2.policies: 'nope'"),
    ("rl-from-pretrained-without-pretrained", lambda t: ["run", SMOKE, "--set", "stages.1.start_from=pretrained"],
     "stages.1.start_from: 'pretrained'"),
    ("rl-from-unknown-stage", lambda t: ["run", SMOKE, "--set", "stages.1.start_from=nope"],
     "stages.1.start_from: 'nope'"),
    ("vineppo-with-reward-model", lambda t: ["run", SMOKE, "--set", "stages.1.algorithm=vineppo", "--set",
                                             "stages.1.format_reward=0.1"], "stages.1.algorithm: 'vineppo'"),
    ("grpo-group-of-one", lambda t: ["run", SMOKE, "--set", "stages.1.group_size=1"], "stages.1.group_size"),
    ("rloo-group-of-one", lambda t: ["run", SMOKE, "--set", "stages.1.algorithm=rloo", "--set",
                                     "stages.1.group_size=1"], "stages.1.group_size"),
    ("game-stage-on-text-env", lambda t: ["run", GAME, "--set", "env.name=arithmetic"], "env.name"),
    ("lm-stage-on-game", lambda t: ["run", SMOKE, "--set", "env.name=connect4"], "board game"),
    ("net-policy-for-lm-stage", lambda t: ["run", SMOKE, "--set", "policy.kind=net"], "policy.kind"),
    ("positions-on-tictactoe", lambda t: ["run", GAME, "--set", 'stages.1.position_sets=["endgame"]'],
     "stages.1.position_sets"),
    ("perfect-expert-on-connect4", lambda t: ["run", C4, "--set", "stages.0.expert=perfect"], "stages.0.expert"),
    ("perfect-opponent-on-connect4", lambda t: ["run", C4, "--set", 'stages.1.opponents=["perfect"]'],
     "stages.1.opponents"),
    ("bad-opponent-name", lambda t: ["run", GAME, "--set", 'stages.2.opponents=["alphabeta@x"]'], "alphabeta@x"),
    ("scale-with-nothing-to-spread",
     lambda t: ["run", write(t, "r.toml", '[scale]\nworkers = 2\n[[stages]]\nkind = "imitate"\n')], "scale"),
    # 2. ordinary mistakes that used to end in a traceback
    ("env-file-syntax-error",
     lambda t: ["run", SMOKE, "--set", "env.name=" + write(t, "bad_env.py", BROKEN) + ":MyEnv"], "SyntaxError"),
    ("env-file-missing", lambda t: ["run", SMOKE, "--set", f"env.name={t}/nowhere.py:MyEnv"], "file not found"),
    ("env-module-missing", lambda t: ["run", SMOKE, "--set", "env.name=no_such_module_xyz:Env"], "no_such_module_xyz"),
    ("unknown-env", lambda t: ["run", SMOKE, "--set", "env.name=arithmetik"], "arithmetik"),
    ("bad-env-knob", lambda t: ["run", SMOKE, "--set", "env.knobs.digitz=3"], "digitz"),
    ("knobs-for-a-game", lambda t: ["run", GAME, "--set", "env.knobs.size=4"], "env.knobs"),
    ("pretrained-missing", lambda t: ["run", SMOKE, "--set", f"policy.pretrained={t}/no/such/model"],
     "policy.pretrained"),
    ("pretrained-not-a-model", lambda t: ["run", SMOKE, "--set", f"policy.pretrained={t}"], "config.json"),
    ("out-is-a-file", lambda t: ["run", SMOKE, "--out", write(t, "taken[x].txt", "keep me")], "taken[x].txt"),
    ("out-not-writable", lambda t: ["run", SMOKE, "--out", "/sys/alphaloop-run"], "/sys/alphaloop-run"),
    ("out-not-empty", lambda t: ["run", SMOKE, "--out", str(Path(write(t, "used/file.txt", "x")).parent)],
     "already exists"),
    ("hidden-size-does-not-divide", lambda t: ["run", SMOKE, "--set", "policy.arch.hidden_size=33"], "hidden_size"),
    ("model-absurdly-wide", lambda t: ["run", SMOKE, "--set", f"policy.arch.hidden_size={10 ** 9}"],
     "policy.arch.hidden_size"),
    ("model-too-big-to-build", lambda t: ["run", SMOKE, "--set", "policy.arch.hidden_size=16384", "--set",
                                          "policy.arch.num_layers=64"], "parameters"),
    ("table-replaced-by-a-number", lambda t: ["run", SMOKE, "--set", "stages.0=3"], "stages.0"),
    ("fractional-steps", lambda t: ["run", SMOKE, "--set", "stages.0.steps=1.5"], "stages.0.steps"),
    ("preference-data-missing", lambda t: ["run", write(t, "rm.toml", '[env]\nname = "assistant"\n[[stages]]\n'
                                                        'kind = "reward_model"\ndata = "nowhere.jsonl"\n')],
     "nowhere.jsonl"),
    ("rl-reward-model-missing", lambda t: ["run", SMOKE, "--set", "stages.1.reward=reward_model"],
     "needs an earlier reward_model stage"),
    ("kv-heads-do-not-divide", lambda t: ["run", SMOKE, "--set", "policy.arch.num_kv_heads=3"], "num_kv_heads"),
    ("eval-zero-problems", lambda t: ["eval", str(t), "--problems", "0"], "--problems"),
    ("eval-on-a-game-run", lambda t: ["eval", game_run_dir(t)], "board game"),
    ("eval-unknown-decoder", lambda t: ["eval", run_dir(t, SMOKE), "--decoder", "best-of@3"], "best-of@3"),
    ("eval-unknown-split", lambda t: ["eval", run_dir(t, SMOKE), "--split", "validation"], "validation"),
    ("eval-nothing-trained", lambda t: ["eval", run_dir(t, SMOKE)], "no trained policy"),
    ("eval-results-unwritable",  # checked before any work: here evals/ is a file, so nothing can be written
     lambda t: ["eval", str(Path(write(t, "smoke-run/evals", "not a directory")).parent), "--policy", "expert"]
     if run_dir(t, SMOKE) else [], "cannot write the eval results"),
    ("recipe-not-text", lambda t: ["run", write(t, "binary.toml", bytes(range(256)))], "not a text file"),
    ("recipe-is-a-directory", lambda t: ["run", str(t)], "is a directory"),
    ("recipe-not-toml", lambda t: ["run", write(t, "bad.toml", "stages = [\n")], "not valid TOML"),
    ("enormous-seed", lambda t: ["run", SMOKE, "--set", f"seed={10 ** 30}"], "seed"),
    ("negative-seed", lambda t: ["run", SMOKE, "--set", "seed=-1"], "seed"),
    ("resume-not-a-run", lambda t: ["run", "--resume", str(t)], "not a run directory"),
    ("resume-with-a-recipe", lambda t: ["run", SMOKE, "--resume", str(t)], "--resume"),
    ("set-without-equals", lambda t: ["run", SMOKE, "--set", "stages.0.steps"], "dotted.path=value"),
    ("set-bad-index", lambda t: ["run", SMOKE, "--set", "stages.7.steps=3"], "not an index"),
    ("unknown-stage-kind", lambda t: ["run", SMOKE, "--set", "stages.0.kind=distil"], "stages.0.kind"),
    ("move-unknown-game", lambda t: ["move", "chess", "--run", str(t), "--position", ""], "chess"),
    ("report-not-a-run", lambda t: ["report", str(t / "nowhere")], "no summary.json"),
    ("compare-not-runs", lambda t: ["compare", str(t), str(t), "--out", str(t / "cmp")], "summary.json"),
    ("positions-bad-kind", lambda t: ["positions", "connect4", "--kind", "midgame", "--out", str(t / "p.txt")],
     "midgame"),
    # 6. messages that must not mislead
    ("unknown-key-did-you-mean", lambda t: ["run", SMOKE, "--set", "stages.0.stpes=3"], "did you mean 'steps'"),
    ("unknown-top-level-key", lambda t: ["run", SMOKE, "--set", "sead=3"], "did you mean 'seed'"),
    ("absurd-steps", lambda t: ["run", SMOKE, "--set", f"stages.0.steps={10 ** 12}"], "stages.0.steps"),
    ("absurd-games", lambda t: ["run", GAME, "--set", f"stages.1.games_per_round={10 ** 9}"],
     "stages.1.games_per_round"),
    ("empty-run-name", lambda t: ["run", SMOKE, "--set", 'name=""'], "name ''"),
    ("run-name-with-newline", lambda t: ["run", SMOKE, "--set", 'name="a\\nb"'], "name"),
    ("run-name-with-slash", lambda t: ["run", SMOKE, "--set", "name=../escape"], "name"),
    ("stage-name-with-slash", lambda t: ["run", SMOKE, "--set", "stages.0.name=a/b"], "stage name"),
    ("bracketed-hint-shown-verbatim", lambda t: ["run", GAME, "--set", "policy.kind=lm"], "[policy.net]"),
    ("threads-zero", lambda t: ["run", SMOKE, "--set", "threads=0"], "threads"),
    ("threads-word", lambda t: ["run", SMOKE, "--set", "threads=many"], "threads"),
]


@pytest.mark.parametrize("setup,needle", [(s, n) for _, s, n in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_clear_line_and_changes_nothing(tmp_path, setup, needle):
    work = tmp_path / "work"
    work.mkdir()
    args = setup(work)
    before = snapshot(work)
    result = cli(*args, cwd=work)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert needle in result.stderr, result.stderr
    assert snapshot(work) == before, "the command left files behind or changed them"
    assert not (work / "runs").exists()


def test_no_row_is_repeated():
    assert len({r[0] for r in ROWS}) == len(ROWS)
