"""AlphaZero Monte Carlo tree search (PUCT), textbook UCT, batched over leaves and over games.

PUCT selection (Silver et al. 2017 "Mastering the game of Go without human knowledge"; 2018
"A general reinforcement learning algorithm that masters chess, shogi and Go through self-play"):

    a* = argmax_a  Q(s,a) + c(s) * P(s,a) * sqrt(N(s)) / (1 + N(s,a))
    c(s) = c_puct                                              (2017)
    c(s) = log((1 + N(s) + c_base) / c_base) + c_puct          (2018, when `c_base` is set; 19652 there)

N(s) counts the node's own expansion visit plus its children's visits (as mctx does), so the
first simulation from a fresh node is already guided by the priors. Q(s,a) = W(s,a) / N(s,a) is
kept from the point of view of the player to move at s; values are negated between plies by
storing each backed-up leaf value as a returns vector [r0, r1] and adding r[player(s)].

First-play urgency: an unvisited child gets Q = `fpu` (default 0.0, "unknown = draw", the value
AlphaZero's pseudocode gives unvisited children). Exploration at the root comes from Dirichlet
noise, P = (1 - eps) P + eps Dir(alpha), applied to the root only and undone after the search.

Textbook UCT (`selection="uct"`; Kocsis & Szepesvari 2006 with UCB1 of Auer et al. 2002): every
untried child is expanded first, one per visit, in random order; then
    a* = argmax_a  (Q(s,a) + 1) / 2 + c * sqrt(ln N(s) / N(s,a)),   c = sqrt(2),
i.e. UCB1 on rewards rescaled to [0, 1]. With `RandomRolloutEvaluator` this is plain UCT.

Batching: each tree collects up to `batch_size` leaves per step, each path marked with a virtual
loss (N += vl, W -= vl) so the next descent avoids it; a descent that reaches a leaf still
waiting for evaluation ends the tree's batch early (it is redone next step, so visit counts
sum exactly to `num_simulations`). `search_many` runs many games' trees in lock-step and sends
all their leaves to the evaluator in ONE call per step. Terminal leaves back up the game's
exact returns and never reach the evaluator.

Two tree layouts, one arithmetic:
- one game (`search`, UCT, Gumbel): flat per-node Python lists (no node objects); node ids index
  `legal`, `prior`, `child`, `N`, `W` rows, so the hot loop is list indexing (fastest for one tree).
- many games (`search_many` with >= 2 PUCT games, `lockstep.py`): numpy arrays [games * nodes,
  actions] descended level by level for all games at once (mctx's layout), so Python work per
  simulation is only the game logic of the new leaf. It performs the same float operations in the
  same order, so its results equal one `search` per game exactly (tested); `vectorized=False`
  turns it off.

Tree reuse: a search whose state extends a previous root's move history (by moves already in the
tree) continues from that subtree. Trees are matched by move history, not by position in the batch
(also `advance(action)` for one game), so games may finish and leave the batch between moves.

The cyclic garbage collector is paused during a search: a tree adds a state object per node (hundreds
of thousands in lock-step self-play), none in a reference cycle (reference counting frees them), and
each automatic collection would traverse all of them again -- about a fifth of self-play time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from alphaloop.games.base import GameState
from alphaloop.search.base import (
    MCTSConfig,
    SearchResult,
    evaluate_checked,
    gc_paused,
    most_visited,
    play_config,
    visit_policy,
)
from alphaloop.search.evaluators import Evaluator
from alphaloop.search.lockstep import Lockstep


class Tree:
    """One game's search tree as parallel per-node lists; edge rows are aligned with `legal[node]`."""

    __slots__ = ("game_name", "history", "root", "states", "player", "legal", "prior", "child", "N", "W",
                 "value", "returns", "expanded", "untried", "sims", "saved_prior", "extra")

    def __init__(self, state: GameState) -> None:
        self.game_name = state.game_name
        self.history = state.move_history()   # move history of the root state
        for name in ("states", "player", "legal", "prior", "child", "N", "W", "value", "returns", "expanded",
                     "untried"):
            setattr(self, name, [])
        self.root = self.add(state)
        self.sims = 0                          # simulations started in the current search
        self.saved_prior: list[float] | None = None
        self.extra: dict = {}

    def add(self, state: GameState) -> int:
        terminal = state.is_terminal()
        legal = [] if terminal else state.legal_actions()
        n = len(legal)
        self.states.append(state)
        self.player.append(-1 if terminal else state.current_player())
        self.legal.append(legal)
        self.prior.append(None)
        self.child.append([-1] * n)
        self.N.append([0.0] * n)
        self.W.append([0.0] * n)
        self.value.append(0.0)
        self.returns.append(list(state.returns()) if terminal else None)
        self.expanded.append(False)
        self.untried.append(None)
        return len(self.states) - 1

    def find(self, state: GameState) -> int:
        """The expanded node whose position is `state` (same game, history extends the root's), or -1."""
        if state.game_name != self.game_name:
            return -1
        history, k = state.move_history(), len(self.history)
        if history[:k] != self.history:
            return -1
        node = self.root
        for action in history[k:]:
            legal = self.legal[node]
            if action not in legal:
                return -1
            node = self.child[node][legal.index(action)]
            if node < 0 or not self.expanded[node]:
                return -1
        return node


class MCTS:
    """AlphaZero PUCT search (or textbook UCT) over one game (`search`) or many in lock-step
    (`search_many`). `seed` drives Dirichlet noise, tie-breaking and UCT's expansion order."""

    config_type: type[BaseModel] = MCTSConfig

    def __init__(self, evaluator: Evaluator, config: MCTSConfig | None = None, seed: int = 0) -> None:
        if not hasattr(evaluator, "evaluate"):
            raise TypeError(f"evaluator: expected an object with evaluate(states), got {type(evaluator)}")
        self.evaluator = evaluator
        if config is None:
            config = self.config_type()
        if not isinstance(config, self.config_type):
            raise TypeError(f"config: expected {self.config_type.__name__}, got {type(config).__name__}")
        self.config = config
        self.rng = np.random.default_rng(seed)
        self._py_rng = random.Random(seed)
        self._trees: list[Tree | None] = []
        self._lockstep = Lockstep(config, evaluator, self.rng)  # the numpy engine of `search_many`

    # ---- public API ------------------------------------------------------------------------
    def search(self, state: GameState) -> SearchResult:
        """Run `num_simulations` simulations from `state` and return the root statistics."""
        return self.search_many([state])[0]

    def choose(self, state: GameState, temperature: float | None = None) -> int:
        """Search `state`, then sample an action from the visit counts at `temperature`
        (config.temperature if None; 0 = most visited, ties broken at random)."""
        result = self.search(state)
        if result.action is not None:
            return result.action
        tau = self.config.temperature if temperature is None else temperature
        pi = visit_policy(result.visit_counts, tau, self.rng)
        return int(np.argmax(pi)) if pi.max() == 1.0 else int(self.rng.choice(len(pi), p=pi))

    def advance(self, action: int) -> None:
        """Move the root of the single-game tree to the child reached by `action`, keeping its subtree.
        (Optional: `search` also finds the subtree from the state's move history.)"""
        tree = self._trees[0] if self._trees else None
        if tree is None:
            return
        legal = tree.legal[tree.root]
        if action not in legal:
            raise ValueError(f"action: expected one of the root's legal actions {legal}, got {action!r}")
        node = tree.child[tree.root][legal.index(action)]
        if node < 0 or not tree.expanded[node]:
            self._trees[0] = None
            return
        tree.root, tree.history = node, tree.history + [action]

    def reset(self) -> None:
        """Forget all trees (the next search starts from scratch)."""
        self._trees = []
        self._lockstep.prev = None

    def search_many(self, states: Sequence[GameState], simulations: Sequence[int] | None = None,
                    explore: Sequence[bool] | None = None) -> list[SearchResult]:
        """Search every state's tree in lock-step: each step, every unfinished tree contributes up to
        `batch_size` leaves and all of them go to the evaluator in ONE call. Results equal one
        `search` per state. A state that continues a position searched last time (up to two moves
        on) reuses that subtree; finished games may simply be left out of the next call.

        `simulations[i]` overrides `num_simulations` for state i and `explore[i] = False` skips its
        root noise: the fast searches of playout-cap randomisation (`selfplay.play_games`)."""
        if len(states) == 0:
            return []
        for i, state in enumerate(states):
            if state.is_terminal():
                raise ValueError(f"states[{i}]: expected a non-terminal state")
        sims = [self.config.num_simulations] * len(states) if simulations is None else [int(n) for n in simulations]
        noise = [True] * len(states) if explore is None else [bool(e) for e in explore]
        if len(sims) != len(states) or len(noise) != len(states) or min(sims) < 1:
            raise ValueError(f"simulations / explore: expected one entry per state ({len(states)}), simulations "
                             f">= 1; got {simulations!r} and {explore!r}")
        with gc_paused():
            if self._vectorizable() and (len(states) > 1 or self._lockstep.prev is not None):
                self._trees = []
                return self._lockstep.run(states, sims, noise)
            self._lockstep.prev = None
            return self._search_lists(states, sims, noise)

    def _search_lists(self, states: Sequence[GameState], sims: list[int], noise: list[bool]) -> list[SearchResult]:
        """`search_many` on per-game list trees (one game, UCT, Gumbel, or `vectorized=False`)."""
        previous = self._previous_trees()
        trees = [self._tree_for(s, previous) for s in states]
        self._trees = list(trees)
        fresh = [t for t in trees if not t.expanded[t.root]]
        if fresh:
            self._evaluate([(t, None, t.root) for t in fresh])
        for tree, explore in zip(trees, noise):
            tree.sims = 0
            self._begin(tree, explore)
        remaining = list(sims)
        batch_size = self.config.batch_size
        while any(remaining):
            items: list = []
            for k, tree in enumerate(trees):
                if remaining[k]:
                    before = len(items)
                    done = self._collect(tree, min(batch_size, remaining[k]), items)
                    remaining[k] -= done + len(items) - before
            if items:
                self._evaluate(items)
        results = [self._result(t) for t in trees]
        for tree in trees:
            if tree.saved_prior is not None:
                tree.prior[tree.root], tree.saved_prior = tree.saved_prior, None
        return results

    # ---- simulation machinery --------------------------------------------------------------
    def _vectorizable(self) -> bool:
        return self.config.selection == "puct" and self.config.vectorized

    def _previous_trees(self) -> dict[tuple, Tree]:
        """The last search's trees by root move history, for reuse."""
        if not self.config.reuse_tree:
            return {}
        return {tuple(t.history): t for t in self._trees if t is not None}

    def _tree_for(self, state: GameState, previous: dict[tuple, Tree]) -> Tree:
        """The previous tree whose root `state` continues (found by move history; each tree serves one
        game, so it is taken out of `previous`), re-rooted at `state`; else a fresh tree."""
        history = state.move_history()
        for k in range(len(history), -1, -1):
            tree = previous.get(tuple(history[:k]))
            if tree is not None:
                node = tree.find(state)
                if node >= 0:
                    del previous[tuple(history[:k])]
                    tree.root, tree.history = node, history
                    return tree
        return Tree(state.clone())

    def _collect(self, tree: Tree, budget: int, items: list) -> int:
        """Start up to `budget` simulations: terminal leaves are backed up at once (their count is
        returned), other leaves get a virtual loss and are appended to `items` for evaluation."""
        vl = self.config.virtual_loss
        done = 0
        for _ in range(budget):
            path, leaf = self._descend(tree)
            if leaf < 0:
                break                      # reached a leaf already waiting: evaluate first
            tree.sims += 1
            returns = tree.returns[leaf]
            if returns is not None:
                self._backup(tree, path, returns, 0.0)
                done += 1
                continue
            for node, i in path:
                tree.N[node][i] += vl
                tree.W[node][i] -= vl
            items.append((tree, path, leaf))
        return done

    def _descend(self, tree: Tree) -> tuple[list[tuple[int, int]], int]:
        """Select edges from the root down to a new or terminal node; leaf -1 means a collision."""
        node, path = tree.root, []
        child, expanded, returns = tree.child, tree.expanded, tree.returns
        while True:
            i = self._pick(tree, node)
            path.append((node, i))
            nxt = child[node][i]
            if nxt < 0:
                state = tree.states[node].clone()
                state.apply_action(tree.legal[node][i])
                nxt = tree.add(state)
                child[node][i] = nxt
                return path, nxt
            if returns[nxt] is not None:
                return path, nxt
            if not expanded[nxt]:
                return path, -1
            node = nxt

    def _evaluate(self, items: list) -> None:
        """One evaluator call for all pending leaves; expand each and back its value up its path."""
        states = [tree.states[leaf] for tree, _, leaf in items]
        priors, values = evaluate_checked(self.evaluator, states, clip=False)
        vl = self.config.virtual_loss
        for (tree, path, leaf), row, v in zip(items, priors.tolist(), values.tolist()):
            if not -math.inf < v < math.inf:
                raise ValueError(f"evaluator: values must be finite, got {values}")
            v = -1.0 if v < -1.0 else 1.0 if v > 1.0 else v
            p = [x if x > 0.0 else 0.0 for x in map(row.__getitem__, tree.legal[leaf])]  # NaN -> 0
            total = sum(p)
            tree.prior[leaf] = [x / total for x in p] if 0.0 < total < math.inf else [1.0 / len(p)] * len(p)
            tree.value[leaf] = v
            tree.expanded[leaf] = True
            if path is not None:
                self._backup(tree, path, [v, -v] if tree.player[leaf] == 0 else [-v, v], vl)

    @staticmethod
    def _backup(tree: Tree, path: list[tuple[int, int]], returns: list[float], vl: float) -> None:
        """Add one visit and the leaf's return for the player at each node along the path,
        removing the virtual loss `vl` placed on it during selection."""
        player, N, W = tree.player, tree.N, tree.W
        for node, i in path:
            N[node][i] += 1.0 - vl
            W[node][i] += returns[player[node]] + vl

    # ---- the rule-specific parts (overridden by Gumbel) ------------------------------------
    def _begin(self, tree: Tree, explore: bool = True) -> None:
        """Per-search root set-up: Dirichlet noise on the root priors (undone after the search)."""
        eps = self.config.dirichlet_fraction
        if eps > 0 and explore:
            prior = tree.prior[tree.root]
            noise = self.rng.dirichlet([self.config.dirichlet_alpha] * len(prior)).tolist()
            tree.saved_prior = prior
            tree.prior[tree.root] = [(1 - eps) * p + eps * e for p, e in zip(prior, noise)]

    def _pick(self, tree: Tree, node: int) -> int:
        """Index (into legal[node]) of the edge to follow from `node`."""
        cfg = self.config
        Ns, Ws = tree.N[node], tree.W[node]
        if cfg.selection == "uct":
            untried = tree.untried[node]
            if untried is None:               # first visit: a random expansion order for its children
                untried = [i for i, c in enumerate(tree.child[node]) if c < 0]
                self._py_rng.shuffle(untried)
                tree.untried[node] = untried
            if untried:
                return untried.pop()
            log_n, c = math.log(sum(Ns)), cfg.uct_c
            best, best_i = -math.inf, 0
            for i, (n, w) in enumerate(zip(Ns, Ws)):
                score = 0.5 * (w / n + 1.0) + c * math.sqrt(log_n / n) if n > 0 else math.inf
                if score > best:
                    best, best_i = score, i
            return best_i
        total = sum(Ns) + 1.0
        c = cfg.c_puct if cfg.c_base is None else math.log((total + cfg.c_base) / cfg.c_base) + cfg.c_puct
        scale, fpu = c * math.sqrt(total), cfg.fpu
        best, best_i = -math.inf, 0
        for i, (n, w, p) in enumerate(zip(Ns, Ws, tree.prior[node])):
            score = (w / n if n > 0 else fpu) + scale * p / (1.0 + n)
            if score > best:
                best, best_i = score, i
        return best_i

    def _result(self, tree: Tree) -> SearchResult:
        root = tree.root
        num_actions = tree.states[root].num_actions
        counts, q = np.zeros(num_actions), np.full(num_actions, np.nan)
        prior = np.zeros(num_actions)
        Ns, Ws = tree.N[root], tree.W[root]
        for i, a in enumerate(tree.legal[root]):
            counts[a], prior[a] = Ns[i], tree.prior[root][i]
            if Ns[i] > 0:
                q[a] = Ws[i] / Ns[i]
        root_value = (tree.value[root] + sum(Ws)) / (1.0 + sum(Ns))
        return SearchResult(counts, q, float(root_value), counts / counts.sum(), prior)


__all__ = ["MCTS", "MCTSConfig", "SearchResult", "Tree", "most_visited", "play_config", "visit_policy"]
