"""Board-game stages end to end: tiny recipe, resume after kill -9, `move`/`play`, clear errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from game_helpers import tictactoe_optimal_move_rate

from alphaloop import runner
from alphaloop.cli_games import move_lines, play, read_human_move
from alphaloop.errors import UserError
from alphaloop.evals.matches import match_results, perfect_lines
from alphaloop.evals.opponents import make_opponent
from alphaloop.games.registry import from_moves, game_class
from alphaloop.policies.nets import NetConfig, PolicyValueNet, build_net
from alphaloop.recipe import load_recipe
from alphaloop.seeding import derive_seed

TIME_KEYS = {"time_s", "positions_per_s", "selfplay_s", "train_s"}
SMOKE = "recipes/tictactoe-smoke.toml"


def metrics_without_time(run_dir):
    records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


@pytest.fixture(scope="module")
def reference(repo_root, tmp_path_factory):
    recipe = load_recipe(f"{repo_root}/{SMOKE}")
    run_dir = runner.prepare_run_dir(recipe, tmp_path_factory.mktemp("games") / "run")
    return runner.run(recipe, run_dir, show_progress=False), run_dir


def test_tiny_recipe_end_to_end(reference):
    summary, run_dir = reference
    assert summary["status"] == "complete"
    assert [s["kind"] for s in summary["stages"]] == ["game_imitate", "alphazero", "game_eval"]
    from alphaloop.policies.nets import native_bf16

    used = "bfloat16" if native_bf16() else "float32"  # train_precision = "auto" (the default), recorded
    assert [s.get("train_precision") for s in summary["stages"]] == [used, used, None]
    final = [e for e in summary["evals"] if e["step"] is None]
    combos = {(e["split"], e["decoder"]) for e in final}
    assert combos == {("vs-random", "raw"), ("vs-random", "mcts@4"), ("vs-perfect", "raw"),
                      ("vs-perfect", "mcts@4"), ("perfect-lines", "raw")}
    for record in final:
        m = record["metrics"]
        assert record["policy"] == "alphazero"
        if record["split"] == "perfect-lines":
            assert 0 <= m["lost_lines_as_first"] + m["lost_lines_as_second"] <= m["lines"]
        else:
            assert m["n"] == 4 and m["win_rate"] + m["draw_rate"] + m["loss_rate"] == pytest.approx(1.0)
            assert m["score"] == pytest.approx(m["win_rate"] + 0.5 * m["draw_rate"])
    # In-training evals: every eval_every rounds, with the round as step.
    assert sorted({e["step"] for e in summary["evals"] if e["stage"] == "alphazero"}) == [2, 4]
    assert summary["elo"]["random"] == 0.0 and summary["elo"]["perfect"] > summary["elo"]["random"]
    net = PolicyValueNet.load(run_dir / summary["stages"][1]["policy_dir"])
    assert net.num_actions == 9
    # It learned something, tiny as it is: its raw moves are optimal in more positions than the
    # untrained net's (seed 0, measured 54.9% -> 61.3-61.5% in float32 and bfloat16 training).
    torch.manual_seed(derive_seed(0, "init"))
    untrained = build_net(NetConfig(kind="resnet", channels=8, blocks=1, hidden=16), game_class("tictactoe"))
    assert tictactoe_optimal_move_rate(net) >= tictactoe_optimal_move_rate(untrained.eval()) + 0.03


def test_resume_after_kill_9_matches(repo_root, reference, tmp_path, kill_then_resume):
    _, ref_dir = reference
    out = tmp_path / "killed"
    kill_then_resume(f"{repo_root}/{SMOKE}", out, "1-alphazero", deadline_s=120)
    assert (out / "summary.json").read_text() == (ref_dir / "summary.json").read_text()
    assert metrics_without_time(out) == metrics_without_time(ref_dir)


def test_move_reads_positions_from_stdin(repo_root, reference):
    _, run_dir = reference
    net = PolicyValueNet.load(run_dir / "stages" / "1-alphazero" / "policy")
    expected = []
    for moves in ("", "5", "159"):
        state = from_moves("tictactoe", moves)
        import torch

        logits, _ = net.infer(torch.from_numpy(state.observation_tensor()[None]))   # search's forward
        legal = state.legal_actions()
        expected.append(str(max(legal, key=lambda a: float(logits[0, a])) + 1))
    assert move_lines("tictactoe", run_dir, 0, None, ["\n", "5\n", "159\n"]) == expected
    assert move_lines("tictactoe", run_dir, 0, "159", []) == expected[2:]
    out = subprocess.run([sys.executable, "-m", "alphaloop.cli", "move", "tictactoe", "--run", str(run_dir)],
                         input="\n5\n159\n", capture_output=True, text=True, cwd=repo_root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == expected
    with_search = move_lines("tictactoe", run_dir, 8, "1524", [])  # searched moves are legal cells too
    assert with_search[0] in {"3", "6", "7", "8", "9"}


@pytest.mark.parametrize(("game", "position", "message"), [
    ("tictactoe", "55", "already taken"),
    ("tictactoe", "1a", "expected a cell digit"),
    ("tictactoe", "14253", "already over"),
    ("connect4", "", "plays 'tictactoe', not 'connect4'"),
    ("chess", "", "GAME 'chess'"),
])
def test_bad_move_inputs_are_user_errors(reference, game, position, message):
    _, run_dir = reference
    with pytest.raises(UserError, match=message):
        move_lines(game, run_dir, 0, position, [])


def test_bad_cli_input_exits_2_without_traceback(repo_root, reference, tmp_path):
    _, run_dir = reference
    out = subprocess.run([sys.executable, "-m", "alphaloop.cli", "move", "tictactoe", "--run", str(run_dir)],
                         input="5\n99\n1\n", capture_output=True, text=True, cwd=repo_root)
    assert out.returncode == 2
    answers = out.stdout.split()                      # the good lines around the bad one are answered
    assert len(answers) == 3 and answers[1] == "?" and answers[0] in set("12346789")
    assert "stdin line 2: move 2 of '99': cell 9 is already taken" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "alphaloop.cli", "move", "tictactoe", "--run", str(tmp_path)],
                         capture_output=True, text=True, cwd=repo_root)
    assert out.returncode == 2 and "no recipe.toml" in out.stderr


def test_corrupt_final_net_of_a_run_is_refused(repo_root, reference, tmp_path):
    """`move --run RUN_DIR` loads the final net a stage wrote beside its manifest: a flipped bit there is
    one line and exit code 2, not a silently different player."""
    import shutil

    _, run_dir = reference
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    weights = copy / "stages" / "1-alphazero" / "policy" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4] ^= 0x01
    weights.write_bytes(bytes(data))
    out = subprocess.run([sys.executable, "-m", "alphaloop.cli", "move", "tictactoe", "--run", str(copy),
                          "--position", "5"], capture_output=True, text=True, cwd=repo_root)
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert "fails its sha256 check" in out.stderr and "model.safetensors" in out.stderr


def test_play_reprompts_bad_input_and_finishes(reference):
    _, run_dir = reference
    answers = iter(["x", "10", "5", "1", "2", "3", "4", "6", "7", "8", "9"])
    said = []

    def ask(prompt):
        return next(answers)

    result = play("tictactoe", run_dir, 0, True, ask=ask, say=said.append)
    assert result in {"win", "draw", "loss"}
    assert any("'x' is not a legal move" in s for s in said) and any("'10' is not a legal move" in s for s in said)


def test_human_move_quits_on_eof():
    def eof(prompt):
        raise EOFError

    assert read_human_move(from_moves("tictactoe", ""), eof, print) is None


def test_match_results_and_opponents():
    assert match_results([("a", "b", 2, 1, 1)]) == [("a", "b", 1.0), ("a", "b", 1.0), ("a", "b", 0.5),
                                                     ("a", "b", 0.0)]
    with pytest.raises(ValueError, match="tictactoe only"):
        make_opponent("perfect", "connect4", 0)
    with pytest.raises(ValueError, match="alphabeta@D"):
        make_opponent("alphabeta@x", None, 0)
    with pytest.raises(ValueError, match="uct@N"):
        make_opponent("uct@0", None, 0)


def test_uct_opponent_is_search_without_learning():
    """uct@N plays a legal, searched move: it takes an immediate connect-four win and beats random."""
    from alphaloop.games.match import play_match
    from alphaloop.games.players import RandomPlayer

    uct = make_opponent("uct@200", "connect4", 0)
    assert uct.choose(from_moves("connect4", "112233")) == 3  # column 4 completes the bottom row
    wins, draws, losses = play_match(uct, RandomPlayer(1), "connect4", 4, seed=0)
    assert wins >= 3 and losses == 0


def test_match_opening_spreads_deterministic_games():
    """With eval_opening plies of random moves, two deterministic players stop replaying one game."""
    from alphaloop.games.match import play_match

    class FirstLegal:
        def choose(self, state):
            return state.legal_actions()[0]

    class LastLegal:
        def choose(self, state):
            return state.legal_actions()[-1]

    same = {play_match(FirstLegal(), LastLegal(), "tictactoe", 2, seed=s) for s in range(4)}
    spread = {play_match(FirstLegal(), LastLegal(), "tictactoe", 2, seed=s, random_opening=2) for s in range(8)}
    assert len(same) == 1 and len(spread) > 1


def test_perfect_lines_of_a_net_that_always_loses_to_a_fork():
    """A net preferring the lowest free cell: as X it plays 1,2,3 and wins only if O lets it; perfect O
    never does. The count must be the same on every call and report losses as O (it opens badly)."""
    import torch

    from alphaloop.policies.nets import NetConfig

    net = PolicyValueNet(NetConfig(kind="mlp", blocks=0, hidden=1), (3, 3, 3), 9)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.policy_head.bias.copy_(torch.arange(9, 0, -1, dtype=torch.float32))
    lines = perfect_lines(net)
    assert lines == perfect_lines(net)
    assert lines["lost_lines_as_second"] > 0 and lines["lines"] > 0


def test_wrong_policy_kind_or_env_is_a_clear_error(repo_root, tmp_path):
    with pytest.raises(UserError, match="policy.kind = 'net'"):  # found when the recipe loads
        load_recipe(f"{repo_root}/{SMOKE}", ["policy.kind=lm"])
    with pytest.raises(UserError, match="opponents"):
        load_recipe(f"{repo_root}/{SMOKE}", ["stages.2.opponents=['minimax']"])


def test_alphazero_lr_schedule_and_playout_cap_settings():
    """Cosine lr from `lr` (first round) to `lr_final` (last); playout-cap settings are checked."""
    from pydantic import ValidationError

    from alphaloop.stages.alphazero import AlphaZeroStageConfig, round_lr

    cfg = AlphaZeroStageConfig(kind="alphazero", rounds=5, lr=1e-3, lr_final=1e-4)
    rates = [round_lr(cfg, r) for r in range(5)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-4)
    assert rates[2] == pytest.approx(5.5e-4) and rates == sorted(rates, reverse=True)
    constant = AlphaZeroStageConfig(kind="alphazero", rounds=5, lr=2e-3)
    assert {round_lr(constant, r) for r in range(5)} == {2e-3}
    assert round_lr(AlphaZeroStageConfig(kind="alphazero", rounds=1, lr=1e-3, lr_final=1e-5), 0) == 1e-3
    AlphaZeroStageConfig(kind="alphazero", simulations=200, fast_simulations=50, full_fraction=0.25)
    with pytest.raises(ValidationError, match="below simulations"):
        AlphaZeroStageConfig(kind="alphazero", simulations=50, fast_simulations=50)
    with pytest.raises(ValidationError, match="Gumbel"):
        AlphaZeroStageConfig(kind="alphazero", search="gumbel", simulations=50, fast_simulations=10)
