"""Reference opponents by name: the fixed points that matches and the Elo ladder measure nets against."""

from __future__ import annotations

from alphaloop.games.alphabeta import AlphaBetaPlayer
from alphaloop.games.players import PerfectTicTacToe, RandomPlayer
from alphaloop.search import MCTS, RandomRolloutEvaluator, play_config
from alphaloop.search.players import SearchPlayer


def make_opponent(name: str, game: str | None, seed: int):
    """The reference player `name` (random | perfect | alphabeta@D | uct@N) for `game`; game None only
    checks the name. `uct@N` is search without learning: UCT (Kocsis & Szepesvari 2006) with one
    uniformly random roll-out per leaf and N simulations per move, the most visited move played."""
    kind, _, depth = name.partition("@")
    if name == "random":
        return None if game is None else RandomPlayer(seed)
    if name == "perfect":
        if game not in (None, "tictactoe"):
            raise ValueError(f"opponent 'perfect' exists for tictactoe only, not {game!r}; use alphabeta@D")
        return None if game is None else PerfectTicTacToe(seed)
    if kind == "alphabeta" and depth.isdigit() and int(depth) >= 1:
        return None if game is None else AlphaBetaPlayer(int(depth), seed=seed)
    if kind == "uct" and depth.isdigit() and int(depth) >= 1:
        config = play_config(int(depth), selection="uct")
        return None if game is None else SearchPlayer(MCTS(RandomRolloutEvaluator(seed), config, seed=seed))
    raise ValueError(f"opponent {name!r}: expected random, perfect (tic-tac-toe), alphabeta@D or uct@N (D, N >= 1)")


def default_opponents(game: str, depth: int) -> list[str]:
    """A floor and a ceiling: random, and perfect play (tic-tac-toe) or depth-`depth` alpha-beta."""
    return ["random", "perfect" if game == "tictactoe" else f"alphabeta@{depth}"]
