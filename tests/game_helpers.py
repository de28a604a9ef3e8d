"""Checks of game-net results computed independently of the code under test."""

from __future__ import annotations

import torch

from alphaloop.policies.nets import PolicyValueNet


def independent_argmax(net: PolicyValueNet, states: list) -> list[int]:
    """The raw policy's move computed without the player, the evaluator or `greedy_moves`: the
    training forward's logits, illegal moves masked out, argmax."""
    obs = torch.stack([torch.as_tensor(s.observation_tensor(), dtype=torch.float32) for s in states])
    with torch.no_grad():
        logits, _ = net(obs)
    legal = torch.zeros_like(logits, dtype=torch.bool)
    for i, state in enumerate(states):
        legal[i, state.legal_actions()] = True
    return logits.masked_fill(~legal, float("-inf")).argmax(1).tolist()


def tictactoe_optimal_move_rate(net: PolicyValueNet) -> float:
    """Share of all 4,520 non-terminal tic-tac-toe positions where the raw net's move (independent
    argmax) is one of perfect play's optimal moves (minimax), a measure of what it learned."""
    from alphaloop.games.players import PerfectTicTacToe
    from alphaloop.games.registry import new_game

    seen, stack = {}, [new_game("tictactoe")]
    while stack:
        state = stack.pop()
        if state.is_terminal() or state.key() in seen:
            continue
        seen[state.key()] = state
        for action in state.legal_actions():
            child = state.clone()
            child.apply_action(action)
            stack.append(child)
    states, perfect, hits = list(seen.values()), PerfectTicTacToe(), 0
    for state, move in zip(states, independent_argmax(net, states)):
        values = perfect.move_values(state)
        hits += values[move] == max(v for v in values if v is not None)
    return hits / len(states)
