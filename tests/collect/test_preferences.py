"""Preference pairs: the JSON Lines format users bring, and pairs collected from labellers."""

import json
import random

import pytest

from alphaloop.collect.preferences import PreferencePair, collect_pairs, read_pairs, write_pairs
from alphaloop.envs import make_env
from alphaloop.errors import UserError


def test_pairs_round_trip_in_the_trl_shape(tmp_path):
    pairs = [PreferencePair("add 1 and 2. ", "3", "sure! 3", chosen_score=1.0, rejected_score=0.7),
             PreferencePair("capital of peru? ", "lima", "paris", meta={"kind": "capital"})]
    write_pairs(tmp_path / "p.jsonl", pairs)
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert lines[1] == {"prompt": "capital of peru? ", "chosen": "lima", "rejected": "paris",
                        "meta": {"kind": "capital"}}
    assert read_pairs(tmp_path / "p.jsonl") == pairs


@pytest.mark.parametrize("text,needle", [
    ('{"prompt": "x", "chosen": "a"}\n', "line 1: field 'rejected'"),
    ('{"prompt": "x", "chosen": "a", "rejected": "b"}\nnot json\n', "line 2 is not JSON"),
    ('{"prompt": "x", "chosen": "a", "rejected": "b", "winner": 1}\n', "unknown field"),
    ("\n", "no pairs"),
])
def test_bad_pair_files_are_clear_errors(tmp_path, text, needle):
    (tmp_path / "bad.jsonl").write_text(text)
    with pytest.raises(UserError, match=needle):
        read_pairs(tmp_path / "bad.jsonl")


def test_collected_pairs_are_labelled_and_reproducible():
    env = make_env("assistant")
    problems = env.problems("train", 50, seed=0)
    first = collect_pairs(env, problems, random.Random(1), source="variants")
    again = collect_pairs(env, problems, random.Random(1), source="variants")
    assert first == again and len(first) == 50
    assert all(p.chosen != p.rejected and 0.0 <= p.meta["p_first"] <= 1.0 for p in first)
    right = sum(env.gold(q, p.chosen) >= env.gold(q, p.rejected) for q, p in zip(problems, first)) / 50
    assert right > 0.6  # labellers mostly agree with the gold, not always (noise, biases)
    with pytest.raises(ValueError, match="samples responses from a policy"):
        collect_pairs(env, problems, random.Random(1), source="mixed")
