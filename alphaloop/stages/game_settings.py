"""Settings the board-game stages share: how a net is evaluated during and after training, and the
training precision."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from alphaloop.evals.opponents import make_opponent
from alphaloop.games.positions import KINDS
from alphaloop.specs import RunSpec, StageConfig

TrainPrecision = Literal["auto", "float32", "bfloat16"]


def train_precision_field() -> Any:
    """The `train_precision` field of the training stages (`learners.alphazero.train_steps`'s
    `precision`, resolved by `policies.nets.training_precision`)."""
    return Field("auto", description="bfloat16 = mixed-precision training (fp32 weights, optimizer, batch norm and "
                                     "loss; ~2x faster a step on a CPU with AMX, ~10x slower where bfloat16 is "
                                     "emulated); auto = bfloat16 where it is native, else float32")


class GameEvalFields(StageConfig):
    """Evaluation settings shared by the three stages."""

    opponents: list[str] | None = Field(
        None, description="random | perfect (tic-tac-toe) | alphabeta@D | uct@N (plain UCT, random roll-outs); "
        "default: random and the strongest")
    alphabeta_depth: int = Field(4, ge=1, le=64, description="depth of the default connect-four opponent")
    eval_games: int = Field(20, ge=2, le=10**6, description="games per opponent and decoder (half as each colour)")
    eval_opening: int = Field(0, ge=0, le=64, description="random plies opening every match game: deterministic "
                              "players would otherwise replay the same two games (keep 0 where a random opening can "
                              "be lost, e.g. against perfect tic-tac-toe)")
    eval_sims: list[int] = Field(default_factory=lambda: [0, 32],
                                 description="0 = raw net (argmax over legal moves); N = MCTS, N simulations")
    position_sets: list[str] = Field(
        default_factory=list, description="connect four: good/perfect-move rates on solver-labelled positions; "
        "kinds endgame | middle-soon | middle-late | opening (generated from the recipe seed, cached in "
        "RUN_DIR/positions) or Pons-format files")
    position_count: int = Field(200, ge=1, le=10**6,
                                description="positions per generated set (at most this many of a file)")
    position_sims: list[int] = Field(default_factory=lambda: [0],
                                     description="on the position sets: 0 = raw net; N = MCTS, N simulations")
    snapshots: bool = Field(False, description="training stages: keep the net of every in-training eval "
                            "(stages/<i>-<name>/snapshots/step-N) for the game_eval Elo ladder")

    def check(self, run: RunSpec, trained: list[str]) -> list[str]:
        """Opponents and position sets that exist for this recipe's game."""
        problems = []
        for name in self.opponents or []:
            try:
                make_opponent(name, run.env.name, 0, build=False)
            except ValueError as exc:
                problems.append(f"opponents: {exc}")
        if self.position_sets and run.env.name != "connect4":
            problems.append(f"position_sets: solver-labelled positions exist for connect4 only, and this recipe plays "
                            f"{run.env.name!r} (remove position_sets)")
        return problems

    @field_validator("opponents")
    @classmethod
    def _opponents(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            make_opponent(name, None, 0)  # raises ValueError naming the allowed forms
        return value

    @field_validator("eval_sims", "position_sims")
    @classmethod
    def _sims(cls, value: list[int], info: ValidationInfo) -> list[int]:
        if not value or any(s < 0 for s in value):
            raise ValueError(f"{info.field_name} must be a non-empty list of ints >= 0, got {value}")
        return value

    @field_validator("position_sets")
    @classmethod
    def _position_sets(cls, value: list[str]) -> list[str]:
        for spec in value:
            if spec not in KINDS and not Path(spec).is_file():
                raise ValueError(f"position_sets: {spec!r} is neither a kind ({', '.join(KINDS)}) nor an existing "
                                 "Pons-format file")
        return value



# ---------------------------------------------------------------- shared pieces
