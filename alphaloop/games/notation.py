"""Positions as people and programs write them: the moves played from the start, one 1-based digit
each (a column 1-7 in connect four, a cell 1-9 in tic-tac-toe, row by row from the top left).

`alphaloop move`, `alphaloop play` and the server's move endpoint all read this notation, so they
share one reader and one wording of its errors.
"""

from __future__ import annotations

# What an occupied action is called, for messages about a move that is not legal.
_TAKEN = {"tictactoe": "is already taken", "connect4": "is full"}


def read_position(game: str, moves: str):
    """The state after `moves` (1-based digits), ready for a move; a ValueError otherwise, whose
    message speaks of the moves as the user typed them (1-based, counted from 1), because the
    games' own errors speak of 0-based actions."""
    from alphaloop.games.registry import game_class

    cls = game_class(game)
    noun = getattr(cls, "move_noun", "move")
    digits = "123456789"[:cls.num_actions]
    state = cls()
    for i, ch in enumerate(moves, 1):
        if state.is_terminal():
            raise ValueError(f"move {i} of {moves!r}: the game is already over after {moves[:i - 1]!r}")
        if ch not in digits:
            raise ValueError(f"move {i} of {moves!r} is {ch!r}: expected a {noun} digit 1..{len(digits)}")
        if int(ch) - 1 not in state.legal_actions():
            raise ValueError(f"move {i} of {moves!r}: {noun} {ch} {_TAKEN.get(game, 'is not a legal move there')}")
        state.apply_action(int(ch) - 1)
    if state.is_terminal():
        raise ValueError(f"the game is already over after {moves!r}; there is no move to make")
    return state
