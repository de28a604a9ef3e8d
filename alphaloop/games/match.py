"""Matches between two players, all games played at once (lock-step), colours alternating."""

from __future__ import annotations

import numpy as np

from alphaloop.games.registry import new_game


def _moves(player, states: list) -> list[int]:
    """`player`'s moves in `states`: batched through `choose_many` when it has one, else one by one."""
    if hasattr(player, "choose_many"):
        return [int(a) for a in player.choose_many(states)]
    return [int(player.choose(s.clone())) for s in states]


def play_match(player_a, player_b, game_name: str, num_games: int, seed: int = 0,
               random_opening: int = 0) -> tuple[int, int, int]:
    """(wins, draws, losses) of `player_a` against `player_b` over `num_games`; A moves first in even
    games and second in odd ones, so neither side keeps the first-move advantage.

    Players expose `choose(state) -> action` (`alphaloop.games.players.Player`) and optionally
    `choose_many(states) -> actions`. Deterministic players would replay the same two games forever,
    so `random_opening` plies at the start of every game are uniformly random legal moves drawn from
    `seed` (game g uses seed + g): a reproducible spread of openings.

    All games are played at once: A moves in every game where it is to move, then B in every game
    where it is to move, and so on. After the first turn every game has the same player to move, so
    each call of a player sees all unfinished games, and a searching player finds each game's tree
    from its previous move (tree reuse is by move history) exactly as in one game at a time (tested).
    One difference: a game whose moves so far are another game's plus one or two more may continue
    that game's tree (the same position reached by the same moves; like alpha-beta's transposition
    table, which also persists across the games of a match). Matches of deterministic players with
    the same opening replay the same game either way.
    """
    if num_games < 0:
        raise ValueError(f"num_games must be >= 0, got {num_games}")
    if random_opening < 0:
        raise ValueError(f"random_opening must be >= 0, got {random_opening}")
    states = []
    for game in range(num_games):
        rng = np.random.default_rng(seed + game)
        state = new_game(game_name)
        while not state.is_terminal() and len(state.move_history()) < random_opening:
            state.apply_action(int(rng.choice(state.legal_actions())))
        states.append(state)
    a_seats = [game % 2 for game in range(num_games)]
    active = [g for g in range(num_games) if not states[g].is_terminal()]
    while active:
        for player, is_a in ((player_a, True), (player_b, False)):
            turn = [g for g in active if (states[g].current_player() == a_seats[g]) == is_a]
            if turn:
                for g, action in zip(turn, _moves(player, [states[g] for g in turn])):
                    states[g].apply_action(action)
            active = [g for g in active if not states[g].is_terminal()]
    wins = draws = losses = 0
    for state, a_seat in zip(states, a_seats):
        outcome = state.returns()[a_seat]
        wins += outcome > 0
        draws += outcome == 0
        losses += outcome < 0
    return wins, draws, losses
