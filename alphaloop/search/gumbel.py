"""Gumbel AlphaZero search (Danihelka, Guez, Schrittwieser & Silver 2022, "Policy improvement by
planning with Gumbel", ICLR), following mctx's `gumbel_muzero_policy`.

Why: with few simulations, PUCT + visit counts can fail to improve on the prior (a move never
visited cannot be chosen). Gumbel search samples *without replacement* and provably improves
the policy even at 2 simulations:

Root.
  1. Gumbel-top-k: g(a) ~ Gumbel(0, 1); the m = min(max_considered, #legal) actions with the
     largest g(a) + logits(a) are considered (logits = log prior).
  2. Sequential halving over the n simulations: in ceil(log2 m) phases the remaining actions
     share the budget equally; after each phase the better half by g(a) + logits(a) + sigma(q(a))
     survives. Implemented as mctx does, by a fixed schedule of "visit counts to consider" (the
     action to visit is the best-scoring one among those with exactly that many visits).
  3. The action played is the surviving (most visited) action with the best g + logits + sigma(q).
  Policy target: pi' = softmax(logits + sigma(completedQ)).

Completed Q (paper eq. 33, mctx `qtransform_completed_by_mix_value`): visited actions keep
q(a); unvisited ones get
    v_mix = (v_hat + sum_b N(b) / sum_{b: N(b)>0} pi(b) * sum_{a: N(a)>0} pi(a) q(a)) / (1 + sum_b N(b)),
then (optionally) min-max rescaling to [0, 1] over the node's actions and
    sigma(q) = (c_visit + max_b N(b)) * c_scale * q       (c_visit = 50, c_scale = 0.1 as in mctx).

Below the root (paper eq. 14), deterministic: a* = argmax_a pi'(a) - N(a) / (1 + sum_b N(b)).

Trees are not reused across moves: sequential halving assumes the root starts with no visits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field

from alphaloop.search.base import SearchResult
from alphaloop.search.mcts import MCTS, Tree

_LOW_LOGIT = -1e9  # logit of an action with prior 0 (mctx clamps the same way)


class GumbelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    num_simulations: int = Field(32, ge=1)
    max_considered: int = Field(16, ge=1)       # m, the number of Gumbel-top-k root actions
    gumbel_scale: float = Field(1.0, ge=0)      # 0 = deterministic search (evaluation)
    c_visit: float = Field(50.0, ge=0)
    c_scale: float = Field(0.1, gt=0)
    rescale_values: bool = True                 # min-max normalise completed Q to [0, 1]
    batch_size: int = Field(1, ge=1)            # leaves per tree per step; batch across games instead
    virtual_loss: float = Field(1.0, ge=0)
    temperature: float = Field(0.0, ge=0)       # unused: the Gumbel sample already explores


def considered_visit_sequence(max_considered: int, num_simulations: int) -> tuple[int, ...]:
    """For each simulation, the visit count an action must have to be visited next (mctx's
    `get_sequence_of_considered_visits`): sequential halving laid out as a fixed schedule."""
    if max_considered <= 1:
        return tuple(range(num_simulations))
    log2max = math.ceil(math.log2(max_considered))
    sequence: list[int] = []
    visits = [0] * max_considered
    considered = max_considered
    while len(sequence) < num_simulations:
        extra = max(1, int(num_simulations / (log2max * considered)))
        for _ in range(extra):
            sequence.extend(visits[:considered])
            for i in range(considered):
                visits[i] += 1
        considered = max(2, considered // 2)
    return tuple(sequence[:num_simulations])


def sigma_completed_q(
    visits: Sequence[float],
    value_sums: Sequence[float],
    priors: Sequence[float],
    raw_value: float,
    c_visit: float = 50.0,
    c_scale: float = 0.1,
    rescale: bool = True,
) -> list[float]:
    """sigma(completedQ(a)) = (c_visit + max_b N(b)) * c_scale * completedQ(a) for one node's edges.

    completedQ(a) = W(a) / N(a) if N(a) > 0 else v_mix (paper eq. 33, see the module docstring),
    min-max rescaled to [0, 1] over the node's actions when `rescale`. `raw_value` is the
    evaluator's value of the node, all values from the point of view of the node's player.
    """
    total = sum(visits)
    v_mix = raw_value
    if total > 0:
        p_sum = sum(p for p, n in zip(priors, visits) if n > 0)
        pq = sum(p * w / n for p, n, w in zip(priors, visits, value_sums) if n > 0)
        if p_sum > 0:
            v_mix = (raw_value + total * pq / p_sum) / (1.0 + total)
    q = [w / n if n > 0 else v_mix for n, w in zip(visits, value_sums)]
    if rescale:
        lo, hi = min(q), max(q)
        span = max(hi - lo, 1e-8)
        q = [(x - lo) / span for x in q]
    scale = (c_visit + max(visits)) * c_scale
    return [scale * x for x in q]


class GumbelMCTS(MCTS):
    """Gumbel AlphaZero search with the same API as `MCTS`; `SearchResult.action` is the move to
    play and `policy_target` is pi'. `choose()` returns the search's action (its Gumbel sample is
    the exploration; use `gumbel_scale=0` for deterministic play)."""

    config_type = GumbelConfig

    def _vectorizable(self) -> bool:
        return False

    def _previous_trees(self) -> dict[tuple, Tree]:
        return {}                               # sequential halving needs a root without visits

    def _begin(self, tree: Tree, explore: bool = True) -> None:
        cfg = self.config
        prior = tree.prior[tree.root]
        n = len(prior)
        tree.extra = {
            "gumbel": (cfg.gumbel_scale * self.rng.gumbel(size=n)).tolist(),
            "logits": [math.log(p) if p > 0 else _LOW_LOGIT for p in prior],
            "schedule": considered_visit_sequence(min(cfg.max_considered, n), cfg.num_simulations),
        }

    def _sigma(self, tree: Tree, node: int) -> list[float]:
        """sigma(completedQ(a)) for every edge of `node`, from the point of view of its player."""
        cfg = self.config
        return sigma_completed_q(tree.N[node], tree.W[node], tree.prior[node], tree.value[node],
                                 cfg.c_visit, cfg.c_scale, cfg.rescale_values)

    def _pick(self, tree: Tree, node: int) -> int:
        Ns = tree.N[node]
        sigma = self._sigma(tree, node)
        if node == tree.root:
            extra = tree.extra
            schedule = extra["schedule"]
            target = schedule[min(tree.sims, len(schedule) - 1)]
            if target not in Ns:               # only possible with several leaves in flight
                target = min(Ns)
            best, best_i = -math.inf, 0
            for i, (g, logit, s) in enumerate(zip(extra["gumbel"], extra["logits"], sigma)):
                if Ns[i] == target and g + logit + s > best:
                    best, best_i = g + logit + s, i
            return best_i
        top = max(sigma)
        weights = [p * math.exp(s - top) for p, s in zip(tree.prior[node], sigma)]
        z = sum(weights) or 1.0
        denom = 1.0 + sum(Ns)
        scores = [w / z - n / denom for w, n in zip(weights, Ns)]
        return scores.index(max(scores))

    def _result(self, tree: Tree) -> SearchResult:
        base = super()._result(tree)
        root = tree.root
        Ns, extra = tree.N[root], tree.extra
        sigma = self._sigma(tree, root)
        scores = [logit + s for logit, s in zip(extra["logits"], sigma)]
        top = max(scores)
        weights = [math.exp(x - top) for x in scores]
        z = sum(weights)
        policy = base.policy_target * 0.0
        legal = tree.legal[root]
        for a, w in zip(legal, weights):
            policy[a] = w / z
        most = max(Ns)
        best = max((i for i in range(len(Ns)) if Ns[i] == most), key=lambda i: extra["gumbel"][i] + scores[i])
        return replace(base, policy_target=policy, action=legal[best])
