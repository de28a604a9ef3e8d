"""Lock-step PUCT trees for many games at once: flat numpy arrays [games * nodes, actions] (mctx's layout).

`MCTS.search_many` hands >= 2 PUCT games (or a continuation of such a search) to this engine. Every
simulation step descends all games' trees level by level with vectorised PUCT,

    a* = argmax_a  Q(s,a) + c(s) * P(s,a) * sqrt(N(s)) / (1 + N(s,a)),

expands the new leaves with ONE evaluator call, and backs the values up with the same virtual loss
as the per-game list trees in `mcts.py`. The float operations are the same and in the same order
(cumulative sums where Python would use `sum`; each edge's increments added in simulation order),
so the results equal one `MCTS.search` per game exactly; the only saving is replacing G Python
descents by one numpy descent per tree level. Kept apart from `mcts.py` so that file reads as the
algorithm and this one as its batched engine.

Layout: node `i` of game `g` has the flat id `g * M + i` (node 0 is the root), edge `(node, a)` the
flat id `node * A + a`. Children are stored as flat ids, so a descent never converts ids; a path is
a list of flat edge ids, and a whole step's backup is one `np.add.at` over all of them. Python runs
only the game logic of each new leaf (clone + apply_action) and keeps the leaf's state object for
the evaluator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from alphaloop.games.base import GameState, legal_masks
from alphaloop.search.base import MCTSConfig, SearchResult, evaluate_checked
from alphaloop.search.evaluators import Evaluator

# node status (`status`): expanded, terminal, awaiting evaluation; _NEW marks a missing child (descent only)
_EXPANDED, _TERMINAL, _PENDING, _NEW = 0, 1, 2, 3
# how a descent ends: at a new leaf to evaluate, a terminal node, or a leaf already awaiting evaluation
_LEAF = 0          # (_TERMINAL and _PENDING as above; a grown child's kind is its status == _TERMINAL)
_ARRAYS = ("N", "W", "P", "L", "player", "value", "status", "rets")


class Lockstep:
    """The PUCT trees of G games as flat numpy arrays, selected and backed up level by level for all
    games at once. Same arithmetic, in the same order, as the list trees of `mcts.py`, so
    `search_many` returns exactly what per-game `search` calls return."""

    def __init__(self, config: MCTSConfig, evaluator: Evaluator, rng: np.random.Generator) -> None:
        self.config = config
        self.evaluator = evaluator
        self.rng = rng                     # the owning MCTS's generator: one stream for both tree layouts
        self.prev: dict | None = None      # the last search, for tree reuse

    # ---- tree storage ------------------------------------------------------------------------
    def _alloc(self, G: int, M: int, A: int) -> None:
        size = G * M
        self.M, self.A = M, A
        self.N, self.W, self.P = np.zeros((size, A)), np.zeros((size, A)), np.zeros((size, A))
        self.C = np.full((size, A), -1, np.int64)        # flat child id, -1 = not created yet
        self.L = np.zeros((size, A), bool)               # legal edges
        self.player = np.full(size, -1, np.int64)        # player to move, -1 at terminal nodes
        self.value = np.zeros(size)                      # evaluator value for the player to move
        self.status = np.full(size, _PENDING, np.int8)
        self.rets = np.zeros((size, 2))                  # exact returns of terminal nodes
        self.count = np.zeros(G, np.int64)               # nodes used per game
        self.nodes: list[GameState | None] = [None] * size

    def _add(self, gs: np.ndarray, states: list[GameState]) -> np.ndarray:
        """New nodes for `states`, one per game in `gs` (distinct games); returns their flat ids."""
        ids = gs * self.M + self.count[gs]
        self.count[gs] += 1
        nodes = self.nodes
        for i, state in zip(ids.tolist(), states):
            nodes[i] = state
        players = np.array([-1 if s.is_terminal() else s.current_player() for s in states], np.int64)
        self.player[ids] = players
        self.L[ids] = legal_masks(states, self.A)       # all False at terminal nodes
        terminal = np.flatnonzero(players < 0)
        if terminal.size:
            self.status[ids[terminal]] = _TERMINAL
            self.rets[ids[terminal]] = [states[k].returns() for k in terminal.tolist()]
        return ids

    def _find_prev(self, state: GameState) -> tuple[int, np.ndarray] | None:
        """(game index, flat ids of its subtree, root first, parents before children) in the previous
        search for a position reached from one of its roots by up to two moves, or None. Trees are
        found by move history, not slot, so games may finish and drop out of the batch between moves."""
        prev = self.prev
        if prev is None:
            return None
        history = state.move_history()
        for k in range(len(history), max(len(history) - 3, -1), -1):
            i = prev["index"].get((state.game_name, tuple(history[:k])))
            if i is not None:
                break
        else:
            return None
        C, L, status = prev["C"], prev["L"], prev["status"]
        node = i * prev["M"]
        for action in history[k:]:
            if not (0 <= action < L.shape[1] and L[node, action]):
                return None
            node = int(C[node, action])
            if node < 0 or status[node] != _EXPANDED:
                return None
        order, frontier = [np.array([node])], np.array([node])
        while frontier.size:                                # breadth-first, one tree level per step
            kids = C[frontier].ravel()
            frontier = kids[kids >= 0]
            order.append(frontier)
        return i, np.concatenate(order)

    def _copy_prev(self, found: list[tuple[int, int, np.ndarray]]) -> None:
        """Copy the reused subtrees [(game, previous game, previous flat ids)] into the new arrays,
        all games in one gather per array; child pointers are translated to the new flat ids."""
        prev, M = self.prev, self.M
        src = np.concatenate([order for _, _, order in found])
        dst = np.concatenate([g * M + np.arange(order.size) for g, _, order in found])
        for name in _ARRAYS:
            getattr(self, name)[dst] = prev[name][src]
        prev_nodes, nodes = prev["nodes"], self.nodes
        for s, d in zip(src.tolist(), dst.tolist()):
            nodes[d] = prev_nodes[s]
        # Child pointers one game at a time: two games may continue the same previous tree (same
        # history), and every child of a subtree lies in it, so `mapping` never serves a stale id.
        mapping = np.full(prev["C"].shape[0], -1, np.int64)
        for g, _, order in found:
            ids = g * M + np.arange(order.size)
            mapping[order] = ids
            rows = prev["C"][order]
            self.C[ids] = np.where(rows >= 0, mapping[rows], -1)
            self.count[g] = order.size

    # ---- the search ----------------------------------------------------------------------------
    def run(self, states: Sequence[GameState], sims: Sequence[int], noise: Sequence[bool]) -> list[SearchResult]:
        """Search `states` (`sims[g]` simulations for game g, root noise where `noise[g]`; as checked
        by `MCTS.search_many`), reusing the previous search's subtrees."""
        cfg = self.config
        G, A = len(states), states[0].num_actions
        for i, state in enumerate(states):
            if state.num_actions != A:
                raise ValueError(f"states[{i}]: expected {A} actions (one game), got {state.num_actions}")
        reuse = [self._find_prev(s) if cfg.reuse_tree else None for s in states]
        self._alloc(G, max(r[1].size if r else 1 for r in reuse) + max(sims), A)
        found = [(g, *r) for g, r in enumerate(reuse) if r]
        if found:
            self._copy_prev(found)
        fresh = np.array([g for g, r in enumerate(reuse) if not r], np.int64)
        if fresh.size:
            ids = self._add(fresh, [states[g].clone() for g in fresh.tolist()])
            priors, values = evaluate_checked(self.evaluator, [self.nodes[i] for i in ids.tolist()])
            self._expand(ids, priors, values)
        roots = np.arange(G) * self.M
        saved = self.P[roots].copy()
        if cfg.dirichlet_fraction > 0:
            eps = cfg.dirichlet_fraction
            for root, explore in zip(roots.tolist(), noise):
                if not explore:
                    continue
                legal = np.flatnonzero(self.L[root])
                dirichlet = self.rng.dirichlet([cfg.dirichlet_alpha] * len(legal))
                self.P[root, legal] = (1 - eps) * self.P[root, legal] + eps * dirichlet
        remaining = np.array(sims, np.int64)
        while remaining.any():
            self._step(remaining)
        results = [self._result(root) for root in roots.tolist()]
        self.P[roots] = saved
        self.prev = {name: getattr(self, name) for name in _ARRAYS + ("C", "nodes", "M")}
        self.prev["index"] = {(s.game_name, tuple(s.move_history())): g for g, s in enumerate(states)}
        return results

    def _step(self, remaining: np.ndarray) -> None:
        """One lock-step round: up to batch_size descents per game, one evaluator call, backups.

        Within one round of descents each game follows one path, so the flat edge ids of a round are
        distinct and virtual loss / terminal backups are plain fancy-index updates."""
        cfg = self.config
        vl, A = cfg.virtual_loss, self.A
        N, W = self.N.reshape(-1), self.W.reshape(-1)
        budget = np.minimum(remaining, cfg.batch_size)
        alive = remaining > 0
        leaves, path_edges, path_leaves = [], [], []
        for r in range(cfg.batch_size):
            act = np.flatnonzero(alive & (budget > r))
            if act.size == 0:
                break
            edges, owner, kind, leaf = self._descend(act)
            alive[act[kind == _PENDING]] = False          # collision: this game's batch is full
            term = kind == _TERMINAL
            if term.any():
                m = term[owner]
                e, lf = edges[m], leaf[owner[m]]
                N[e] += 1.0
                W[e] += self.rets[lf, self.player[e // A]]
                remaining[act[term]] -= 1
            ev = kind == _LEAF
            if ev.any():
                m = ev[owner]
                e = edges[m]
                N[e] += vl
                W[e] -= vl
                remaining[act[ev]] -= 1
                path_edges.append(e)
                path_leaves.append(leaf[owner[m]])
                leaves.append(leaf[ev])
        if not leaves:
            return
        ids = np.concatenate(leaves)
        priors, values = evaluate_checked(self.evaluator, [self.nodes[i] for i in ids.tolist()])
        self._expand(ids, priors, values)
        e, lf = np.concatenate(path_edges), np.concatenate(path_leaves)
        v = self.value[lf]
        # the leaf's value for the player at each node on the path: +v for the leaf's mover, -v otherwise
        ret = np.where(self.player[e // A] == self.player[lf], v, -v)
        np.add.at(N, e, 1.0 - vl)                          # in round order: same sums as one by one
        np.add.at(W, e, ret + vl)

    def _descend(self, act: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """PUCT descent for games `act` from their roots, creating the new leaves' nodes. Returns the
        flat edge ids of all paths, the position in `act` owning each edge, and per game the leaf
        kind (_LEAF: a new leaf to evaluate, _TERMINAL, _PENDING: collision) and leaf flat id."""
        cfg, M, A = self.config, self.M, self.A
        N, W, P, L, status = self.N, self.W, self.P, self.L, self.status
        C = self.C.reshape(-1)
        kind = np.full(act.size, -1, np.int64)
        leaf = np.zeros(act.size, np.int64)
        f, pos = act * M, np.arange(act.size)
        edges, owners = [], []
        while f.size:
            n = N[f]
            total = n.cumsum(1)[:, -1] + 1.0              # sequential, as Python's sum
            if cfg.c_base is None:
                c = cfg.c_puct
            else:
                c = np.array([math.log((t + cfg.c_base) / cfg.c_base) + cfg.c_puct for t in total.tolist()])
            scale = c * np.sqrt(total)
            q = np.divide(W[f], n, out=np.full(n.shape, cfg.fpu), where=n > 0)
            score = q + scale[:, None] * P[f] / (1.0 + n)
            a = np.where(L[f], score, -np.inf).argmax(1)
            e = f * A + a
            edges.append(e)
            owners.append(pos)
            child = C[e]
            new = child < 0
            code = np.where(new, _NEW, status[child])     # (status[-1] is read but never used)
            stop = np.flatnonzero(code)
            if stop.size:
                kind[pos[stop]] = code[stop]
                leaf[pos[stop]] = child[stop]
                grow = stop[new[stop]]
                if grow.size:                             # grow the trees (game logic is Python)
                    nodes, children = self.nodes, []
                    for parent, action in zip(f[grow].tolist(), a[grow].tolist()):
                        state = nodes[parent].clone()
                        state.apply_action(action)
                        children.append(state)
                    ids = self._add(f[grow] // M, children)
                    C[e[grow]] = ids
                    kind[pos[grow]] = status[ids] == _TERMINAL
                    leaf[pos[grow]] = ids
                keep = code == _EXPANDED
                f, pos = child[keep], pos[keep]
            else:
                f = child
        return np.concatenate(edges), np.concatenate(owners), kind, leaf

    def _expand(self, ids: np.ndarray, priors: np.ndarray, values: np.ndarray) -> None:
        legal = self.L[ids]
        p = np.where(legal & (priors > 0.0), priors, 0.0)          # NaN and negatives -> 0
        total = p.cumsum(1)[:, -1]                                  # sequential, as Python's sum
        ok = (total > 0.0) & (total < math.inf)
        uniform = legal / legal.sum(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.P[ids] = np.where(ok[:, None], p / np.where(ok, total, 1.0)[:, None], uniform)
        self.value[ids] = values
        self.status[ids] = _EXPANDED

    def _result(self, root: int) -> SearchResult:
        counts, w = self.N[root].copy(), self.W[root]
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.where(counts > 0, w / counts, np.nan)
        root_value = (self.value[root] + w.cumsum()[-1]) / (1.0 + counts.cumsum()[-1])
        return SearchResult(counts, q, float(root_value), counts / counts.sum(), self.P[root].copy())
