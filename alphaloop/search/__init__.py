"""Decision-time search: turns a policy (+ a value) into a better policy.

Public API (mctx style, everything batched through one `Evaluator.evaluate(states)` call):
`MCTS` / `MCTSConfig` (AlphaZero PUCT, or textbook UCT), `GumbelMCTS` / `GumbelConfig`
(Gumbel AlphaZero root), `SearchResult`, `visit_policy`, `play_config` (the settings for playing rather than
self-play), and the evaluators.
"""

from alphaloop.search.base import MCTSConfig, SearchResult, most_visited, play_config, visit_policy
from alphaloop.search.evaluators import Evaluator, RandomRolloutEvaluator, UniformEvaluator
from alphaloop.search.gumbel import GumbelConfig, GumbelMCTS
from alphaloop.search.mcts import MCTS

__all__ = [
    "MCTS",
    "Evaluator",
    "GumbelConfig",
    "GumbelMCTS",
    "MCTSConfig",
    "RandomRolloutEvaluator",
    "SearchResult",
    "UniformEvaluator",
    "most_visited",
    "play_config",
    "visit_policy",
]
