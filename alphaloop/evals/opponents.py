"""Reference opponents by name: the fixed points that matches and the Elo ladder measure nets against."""

from __future__ import annotations

from alphaloop.games.alphabeta import AlphaBetaPlayer
from alphaloop.games.players import PerfectTicTacToe, RandomPlayer
from alphaloop.search import MCTS, RandomRolloutEvaluator, play_config
from alphaloop.search.players import SearchPlayer


def make_opponent(name: str, game: str | None, seed: int, build: bool = True):
    """The reference player `name` (random | perfect | alphabeta@D | uct@N) for `game`; with game None
    or `build=False` only checks the name (ValueError naming the allowed forms). `uct@N` is search
    without learning: UCT (Kocsis & Szepesvari 2006) with one uniformly random roll-out per leaf and
    N simulations per move, the most visited move played."""
    kind, _, number = name.partition("@")
    if name == "perfect" and game not in (None, "tictactoe"):
        raise ValueError(f"opponent 'perfect' exists for tictactoe only, not {game!r}; use alphabeta@D")
    valid = name in ("random", "perfect") or (kind in ("alphabeta", "uct") and number.isdigit()
                                              and 1 <= int(number) <= (64 if kind == "alphabeta" else 10**6))
    if not valid:
        raise ValueError(f"opponent {name!r}: expected random, perfect (tic-tac-toe), alphabeta@D (1 <= D <= 64) "
                         "or uct@N (1 <= N <= 1000000)")
    if game is None or not build:
        return None
    if name == "random":
        return RandomPlayer(seed)
    if name == "perfect":
        return PerfectTicTacToe(seed)
    if kind == "alphabeta":
        return AlphaBetaPlayer(int(number), seed=seed)
    return SearchPlayer(MCTS(RandomRolloutEvaluator(seed), play_config(int(number), selection="uct"), seed=seed))


def default_opponents(game: str, depth: int) -> list[str]:
    """A floor and a ceiling: random, and perfect play (tic-tac-toe) or depth-`depth` alpha-beta."""
    return ["random", "perfect" if game == "tictactoe" else f"alphabeta@{depth}"]
