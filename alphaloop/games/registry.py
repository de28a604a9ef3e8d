"""Board games by name: the one place a recipe's `game = "connect4"` becomes a state."""

from __future__ import annotations

from collections.abc import Callable

from alphaloop.games.base import GameState

Symmetries = Callable  # (obs, policy) -> list[(obs, policy)]


def _tictactoe() -> tuple[type, Symmetries]:
    from alphaloop.games.tictactoe import TicTacToeState, symmetries

    return TicTacToeState, symmetries


def _connect4() -> tuple[type, Symmetries]:
    from alphaloop.games.connect4 import Connect4State, symmetries

    return Connect4State, symmetries


# Modules load on first use so importing the registry stays cheap.
_GAMES: dict[str, Callable[[], tuple[type, Symmetries]]] = {
    "tictactoe": _tictactoe,
    "connect4": _connect4,
}


def game_names() -> list[str]:
    """The registered game names, sorted."""
    return sorted(_GAMES)


def _load(name: str) -> tuple[type, Symmetries]:
    if name not in _GAMES:
        raise KeyError(f"unknown game {name!r}: expected one of {game_names()}")
    return _GAMES[name]()


def game_class(name: str) -> type:
    """The state class of game `name` (has `from_moves`, `num_actions`, `observation_shape`)."""
    return _load(name)[0]


def new_game(name: str) -> GameState:
    """The initial state of game `name` ("tictactoe" or "connect4")."""
    return game_class(name)()


def from_moves(name: str, moves: str) -> GameState:
    """A state of game `name` from a position-file move string (1-based digits)."""
    return game_class(name).from_moves(moves)


def symmetries_fn(name: str) -> Symmetries:
    """The game's `symmetries(obs, policy) -> list[(obs, policy)]` for data augmentation."""
    return _load(name)[1]
