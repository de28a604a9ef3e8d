"""Episode, the one experience record: what collect fills, what scoring keeps, what travels to workers."""

import pickle
import random

from alphaloop.batch import episode_batch, pack_episodes
from alphaloop.collect import demonstrations, expert_episodes, score_episode
from alphaloop.envs import make_env
from alphaloop.episode import Episode


def test_harm_is_recorded_per_episode_and_kept_by_scoring_and_workers():
    """Agents record harm per episode (a destructive tool call, an off-limits answer); scoring the
    outcome must not erase it, and it must survive the pickling that sends episodes from workers."""
    env = make_env("arithmetic", digits_min=1, digits_max=1)
    problem = env.problems("test", 1, seed=0)[0]
    assert Episode(observations=[problem.prompt]).harm == 0.0
    episode = Episode(observations=[problem.prompt], actions=["rm -rf /"], harm=1.0)
    scored = score_episode(env, problem, episode)
    assert scored.harm == 1.0 and scored.success is False and scored.rewards == [0.0]
    assert pickle.loads(pickle.dumps(scored)).harm == 1.0


def test_expert_episodes_are_scored_and_demonstrations_are_tokenised():
    env = make_env("arithmetic", digits_min=1, digits_max=2, misconception_rate=0.0)
    problems = env.problems("train", 4, seed=1)
    groups = expert_episodes(env, problems, 2, random.Random(0))
    assert [len(g) for g in groups] == [2, 2, 2, 2]
    assert all(e.success and e.reward == 1.0 and e.info["problem"] == i for i, g in enumerate(groups) for e in g)

    class Chars:  # the policy interface demonstrations need: prompt ids, encode, EOS
        eos_id, pad_id = 1, 0

        def prompt_ids(self, text):
            return [2] + [ord(c) for c in text]

        def encode(self, text):
            return [ord(c) for c in text]

    episodes = demonstrations(env, Chars(), random.Random(3), 3)
    again = demonstrations(env, Chars(), random.Random(3), 3)
    assert [e.completion for e in episodes] == [e.completion for e in again]  # the stream decides the batch
    for e in episodes:
        assert e.prompt_ids == [2] + [ord(c) for c in e.prompt] and e.action_ids[-1] == Chars.eos_id
    input_ids, attention, mask = pack_episodes(episodes, Chars.pad_id)
    assert int(mask.sum()) == sum(len(e.action_ids) for e in episodes)   # completion tokens only
    batch = episode_batch(episodes, Chars.pad_id)
    assert len(batch) == 3 and int(batch.mask.sum()) == int(mask.sum())
