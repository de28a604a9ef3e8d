"""Searches as players: a policy-value net (raw, or with MCTS over it) and a search without a net
(plain UCT with random roll-outs). Players expose `choose(state) -> action` and `choose_many(states)`,
the batched form that matches (`games.match.play_match`) call for every game at once.
"""

from __future__ import annotations

from alphaloop.policies.nets import PolicyValueNet
from alphaloop.search.base import MCTSConfig, most_visited, play_config
from alphaloop.search.mcts import MCTS
from alphaloop.search.net_evaluator import NetEvaluator, greedy_moves


class NetPlayer:
    """A player backed by a policy-value net: `sims == 0` plays the raw policy's argmax over legal
    moves (no search at all); `sims > 0` runs that many PUCT simulations (no root noise) and plays the
    most visited move, ties broken by `seed`, with `play_config` (one leaf per tree per net call)
unless `search_config` overrides the MCTS settings.

    `choose_many(states)` moves in many games at once: one batched forward pass (raw) or one lock-step
    search over all the games' trees (`MCTS.search_many`, which reuses each game's subtree found by
    move history), so a match of G games costs about one search per ply instead of G."""

    def __init__(self, net: PolicyValueNet, sims: int = 0, seed: int = 0,
                 search_config: MCTSConfig | None = None) -> None:
        if sims < 0:
            raise ValueError(f"sims must be >= 0, got {sims}")
        self.net = net
        self.sims = int(sims)
        self.evaluator = NetEvaluator(net)
        self.search: MCTS | None = None
        if self.sims > 0:
            config = (search_config.model_copy(update={"num_simulations": self.sims}) if search_config
                      else play_config(self.sims))
            self.search = MCTS(self.evaluator, config, seed=seed)

    def choose(self, state) -> int:
        return self.choose_many([state])[0]

    def choose_many(self, states: list) -> list[int]:
        """One move per (non-terminal) state, as `choose` would pick it."""
        if self.search is None:
            return greedy_moves(self.evaluator, states, self.net.num_actions)
        return most_visited(self.search.search_many(states), self.search.rng)


class SearchPlayer:
    """A search without a net as a player (e.g. plain UCT with random roll-outs): the most visited
    move; `choose_many` searches all the states' trees in one `search_many` call, so a match keeps
    each game's tree for reuse at its next move (one game at a time would keep it too)."""

    def __init__(self, search: MCTS) -> None:
        self.search = search

    def choose(self, state) -> int:
        return self.choose_many([state])[0]

    def choose_many(self, states: list) -> list[int]:
        return most_visited(self.search.search_many(states), self.search.rng)
