"""Lock-step PUCT trees for many games at once: numpy arrays [games, nodes, actions] (mctx's layout).

`MCTS.search_many` hands >= 2 PUCT games (or a continuation of such a search) to this engine. Every
simulation step descends all games' trees level by level with vectorised PUCT,

    a* = argmax_a  Q(s,a) + c(s) * P(s,a) * sqrt(N(s)) / (1 + N(s,a)),

expands the new leaves with ONE evaluator call, and backs the values up with the same virtual loss
as the per-game list trees in `mcts.py`. The float operations are the same and in the same order
(cumulative sums where Python would use `sum`), so the results equal one `MCTS.search` per game
exactly; the only saving is replacing G Python descents by one numpy descent per tree level.
Kept apart from `mcts.py` so that file reads as the algorithm and this one as its batched engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from alphaloop.games.base import GameState
from alphaloop.search.mcts import MCTS, SearchResult, _evaluate_checked


class Lockstep:
    """The PUCT trees of G games as numpy arrays [G, nodes, A], selected and backed up level by
    level for all games at once (mctx's layout). Same arithmetic, in the same order, as the list
    trees above, so `search_many` returns exactly what per-game `search` calls return; it only
    replaces G Python descents by one vectorised descent. Node 0 of each game is its root."""

    def __init__(self, owner: MCTS) -> None:
        self.owner = owner
        self.prev: dict | None = None      # the last search, for tree reuse

    # ---- tree storage ------------------------------------------------------------------------
    def _alloc(self, G: int, M: int, A: int) -> None:
        self.N, self.W, self.P = np.zeros((G, M, A)), np.zeros((G, M, A)), np.zeros((G, M, A))
        self.C = np.full((G, M, A), -1, np.int64)
        self.L = np.zeros((G, M, A), bool)
        self.player = np.full((G, M), -1, np.int64)
        self.value = np.zeros((G, M))
        self.status = np.full((G, M), 2, np.int8)       # 0 expanded, 1 terminal, 2 awaiting evaluation
        self.M = M
        self.rets = np.zeros((G, M, 2))
        self.states: list[list[GameState]] = [[] for _ in range(G)]

    def _add(self, gs: list[int], states: list[GameState]) -> np.ndarray:
        """Append one node per (game, state); per-node game calls in Python, array writes batched."""
        ids = np.empty(len(gs), np.int64)
        inner_g, inner_i, players, legal_rows, legal_cols = [], [], [], [], []
        for k, (g, state) in enumerate(zip(gs, states)):
            idx = len(self.states[g])
            self.states[g].append(state)
            ids[k] = idx
            if state.is_terminal():
                self.status[g, idx] = 1
                self.rets[g, idx] = state.returns()
            else:
                legal = state.legal_actions()
                inner_g.append(g)
                inner_i.append(idx)
                players.append(state.current_player())
                legal_rows.extend([len(inner_g) - 1] * len(legal))
                legal_cols.extend(legal)
        if inner_g:
            self.player[inner_g, inner_i] = players
            rows = np.zeros((len(inner_g), self.L.shape[2]), bool)
            rows[legal_rows, legal_cols] = True
            self.L[inner_g, inner_i] = rows
        return ids

    def _find_prev(self, state: GameState) -> tuple[int, list[int]] | None:
        """(game index, node ids of its subtree, root first, breadth-first) in the previous search for
        a position reached from one of its roots by up to two moves, or None. Trees are found by
        move history, not slot, so games may finish and drop out of the batch between moves."""
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
        node = 0
        for action in history[k:]:
            if not (0 <= action < L.shape[2] and L[i, node, action]):
                return None
            node = int(C[i, node, action])
            if node < 0 or status[i, node] != 0:
                return None
        order, k = [node], 0
        while k < len(order):
            row = C[i, order[k]]
            order.extend(row[row >= 0].tolist())
            k += 1
        return i, order

    def _copy_prev(self, g: int, i: int, order: list[int]) -> None:
        prev = self.prev
        k = len(order)
        for name in ("N", "W", "P", "L", "player", "value", "status", "rets"):
            getattr(self, name)[g, :k] = prev[name][i, order]
        mapping = np.full(prev["C"].shape[1], -1, np.int64)
        mapping[order] = np.arange(k)
        rows = prev["C"][i, order]
        self.C[g, :k] = np.where(rows >= 0, mapping[rows], -1)
        self.states[g] = [prev["states"][i][o] for o in order]

    # ---- the search ----------------------------------------------------------------------------
    def run(self, states: Sequence[GameState]) -> list[SearchResult]:
        owner, cfg = self.owner, self.owner.config
        G, A = len(states), states[0].num_actions
        for i, state in enumerate(states):
            if state.num_actions != A:
                raise ValueError(f"states[{i}]: expected {A} actions (one game), got {state.num_actions}")
        reuse = [self._find_prev(s) if cfg.reuse_tree else None for s in states]
        self._alloc(G, max(len(r[1]) if r else 1 for r in reuse) + cfg.num_simulations, A)
        fresh = []
        for g, found in enumerate(reuse):
            if found:
                self._copy_prev(g, *found)
            else:
                fresh.append(g)
        self._add(fresh, [states[g].clone() for g in fresh])
        if fresh:
            priors, values = _evaluate_checked(owner.evaluator, [self.states[g][0] for g in fresh])
            self._expand(np.array(fresh), np.zeros(len(fresh), np.int64), priors, values)
        saved = self.P[:, 0].copy()
        if cfg.dirichlet_fraction > 0:
            eps = cfg.dirichlet_fraction
            for g in range(G):
                legal = np.flatnonzero(self.L[g, 0])
                noise = owner.rng.dirichlet([cfg.dirichlet_alpha] * len(legal))
                self.P[g, 0, legal] = (1 - eps) * self.P[g, 0, legal] + eps * noise
        remaining = np.full(G, cfg.num_simulations)
        while remaining.any():
            self._step(remaining)
        results = [self._result(g) for g in range(G)]
        self.P[:, 0] = saved
        self.prev = {name: getattr(self, name) for name in
                     ("N", "W", "P", "C", "L", "player", "value", "status", "rets", "states")}
        self.prev["index"] = {(s.game_name, tuple(s.move_history())): g for g, s in enumerate(states)}
        return results

    def _step(self, remaining: np.ndarray) -> None:
        """One lock-step round: up to batch_size descents per game, one evaluator call, backups."""
        cfg = self.owner.config
        vl = cfg.virtual_loss
        budget = np.minimum(remaining, cfg.batch_size)
        alive = remaining > 0
        waiting = []                          # (levels, positions, leaf ids) per sub-round, for backup
        leaf_g, leaf_idx = [], []
        for r in range(cfg.batch_size):
            act = np.flatnonzero(alive & (budget > r))
            if act.size == 0:
                break
            levels, kind, leaf = self._descend(act)
            collided = kind == 2
            alive[act[collided]] = False
            term = kind == 1
            if term.any():
                rets = self.rets[act, leaf]
                self._backup(levels, term, rets, 0.0)
                remaining[act[term]] -= 1
            ev = kind == 0
            if ev.any():
                N2, W2 = self.N.reshape(-1, self.L.shape[2]), self.W.reshape(-1, self.L.shape[2])
                for f, a, pos in levels:
                    m = ev[pos]
                    N2[f[m], a[m]] += vl
                    W2[f[m], a[m]] -= vl
                remaining[act[ev]] -= 1
                waiting.append((levels, ev, act, leaf))
                leaf_g.append(act[ev])
                leaf_idx.append(leaf[ev])
        if not waiting:
            return
        gs, idx = np.concatenate(leaf_g), np.concatenate(leaf_idx)
        priors, values = _evaluate_checked(self.owner.evaluator, [self.states[g][i] for g, i in zip(gs, idx)])
        self._expand(gs, idx, priors, values)
        for levels, ev, act, leaf in waiting:
            g, i = act, np.where(ev, leaf, 0)
            v = self.value[g, i]
            rets = np.where((self.player[g, i] == 0)[:, None], np.stack([v, -v], 1), np.stack([-v, v], 1))
            self._backup(levels, ev, rets, vl)

    def _descend(self, act: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
        """PUCT descent for games `act` from their roots. Returns the levels [(flat node ids, actions,
        positions in act)], and per game the leaf kind (0 new leaf to evaluate, 1 terminal,
        2 collision) and leaf node id. Flat id = game * M + node indexes the [G * M, A] views."""
        cfg, M, A = self.owner.config, self.M, self.L.shape[2]
        N2, W2, P2 = self.N.reshape(-1, A), self.W.reshape(-1, A), self.P.reshape(-1, A)
        C2, L2, status = self.C.reshape(-1, A), self.L.reshape(-1, A), self.status.reshape(-1)
        kind = np.full(act.size, -1, np.int64)
        leaf = np.zeros(act.size, np.int64)
        base = act * M                                    # flat id of each game's root
        f, pos = base, np.arange(act.size)
        levels = []
        while f.size:
            n = N2[f]
            total = n.cumsum(1)[:, -1] + 1.0              # sequential, as Python's sum
            if cfg.c_base is None:
                c = cfg.c_puct
            else:
                c = np.array([math.log((t + cfg.c_base) / cfg.c_base) + cfg.c_puct for t in total.tolist()])
            scale = c * np.sqrt(total)
            q = np.divide(W2[f], n, out=np.full(n.shape, cfg.fpu), where=n > 0)
            score = q + scale[:, None] * P2[f] / (1.0 + n)
            a = np.where(L2[f], score, -np.inf).argmax(1)
            levels.append((f, a, pos))
            nxt = C2[f, a]
            new = nxt < 0
            child = base + nxt
            code = np.where(new, 3, status[np.where(new, base, child)])   # 3 = not created yet
            stop = np.flatnonzero(code)
            if stop.size:
                kind[pos[stop]] = code[stop]
                leaf[pos[stop]] = nxt[stop]
                grow = stop[new[stop]]
                if grow.size:                             # grow the trees (game logic is Python)
                    gg = (base[grow] // M).tolist()
                    parents, actions = (f[grow] - base[grow]).tolist(), a[grow].tolist()
                    children = []
                    for k in range(grow.size):
                        state = self.states[gg[k]][parents[k]].clone()
                        state.apply_action(actions[k])
                        children.append(state)
                    ids = self._add(gg, children)
                    self.C[gg, parents, actions] = ids
                    kind[pos[grow]] = self.status[gg, ids] == 1
                    leaf[pos[grow]] = ids
                keep = code == 0
                base, f, pos = base[keep], child[keep], pos[keep]
            else:
                f = child
        return levels, kind, leaf

    def _backup(self, levels: list, mask: np.ndarray, rets: np.ndarray, vl: float) -> None:
        """N += 1 - vl and W += r[player(node)] + vl on every edge of the masked games' paths."""
        A = self.L.shape[2]
        N2, W2, player = self.N.reshape(-1, A), self.W.reshape(-1, A), self.player.reshape(-1)
        for f, a, pos in levels:
            m = mask[pos]
            if m.any():
                fm, am = f[m], a[m]
                N2[fm, am] += 1.0 - vl
                W2[fm, am] += rets[pos[m], player[fm]] + vl

    def _expand(self, gs: np.ndarray, idx: np.ndarray, priors: np.ndarray, values: np.ndarray) -> None:
        legal = self.L[gs, idx]
        p = np.where(legal & (priors > 0.0), priors, 0.0)          # NaN and negatives -> 0
        total = p.cumsum(1)[:, -1]                                  # sequential, as Python's sum
        ok = (total > 0.0) & (total < math.inf)
        uniform = legal / legal.sum(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.P[gs, idx] = np.where(ok[:, None], p / np.where(ok, total, 1.0)[:, None], uniform)
        self.value[gs, idx] = values
        self.status[gs, idx] = 0

    def _result(self, g: int) -> SearchResult:
        counts, w = self.N[g, 0].copy(), self.W[g, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.where(counts > 0, w / counts, np.nan)
        root_value = (self.value[g, 0] + w.cumsum()[-1]) / (1.0 + counts.cumsum()[-1])
        return SearchResult(counts, q, float(root_value), counts / counts.sum(), self.P[g, 0].copy())
