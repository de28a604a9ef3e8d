"""Collect: Env x Policy [x Search] -> experience. One idea, three places it happens:

- `text.py`: an LM policy (or the env's expert) on a text env -> scored `Episode`s, in this process;
- `text_workers.py`: the same, split over the recipe's `[scale]` workers (the `rl` stage's rollouts);
- `selfplay.py`: board games, the net + MCTS playing itself (or an expert playing both sides)
  -> `GameRecord`s and training examples, split over workers the same way.
"""

from alphaloop.collect.text import demonstrations, expert_episodes, policy_episodes, score_episode

__all__ = ["demonstrations", "expert_episodes", "policy_episodes", "score_episode"]
