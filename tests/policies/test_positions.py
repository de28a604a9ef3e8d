"""Position rules (coupled ids for digit tasks) and NoPE: ids, every forward path agreeing, save/load."""

import pytest
import torch
from transformers import LlamaForCausalLM

from alphaloop.batch import pack, pack_completions
from alphaloop.policies.lm import LMArch, LMPolicy
from alphaloop.policies.positions import CONFIG_KEY
from alphaloop.policies.prefix import bucketed_forward
from alphaloop.policies.sampler import sample
from alphaloop.policies.stepwise import StepDecoder

ALPHABET = "0123456789+= "
ARCH = LMArch(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64, max_seq_len=64)
TEXTS = ["047+085=", "01+02=", "0099+0001=", "05+05=", "012+034="]


def make_policy(positions: str | None = "coupled", arch: LMArch = ARCH, seed: int = 0, offsets: int = 0) -> LMPolicy:
    """Random weights 10x wider than the default init, so that outputs depend on positions and prompts."""
    policy = LMPolicy.build(arch, ALPHABET, seed=seed, positions=positions, position_offsets=offsets)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy.model.reset_parameters(0.2)
    return policy


def test_coupled_ids_on_a_hand_written_example():
    policy = make_policy()
    ids = torch.tensor([policy.prompt_ids("047+085=") + policy.encode("231") + [policy.eos_id]])
    # <bos> 0 4 7 + 0 8 5 = | 2 3 1 <eos>: a digit of significance j at j + 1, '=' at 1, answer on from 2
    assert policy.position_ids(ids, torch.ones_like(ids)).tolist() == [[0, 3, 2, 1, 0, 3, 2, 1, 1, 2, 3, 4, 5]]


def test_coupled_ids_ignore_padding_on_either_side():
    policy = make_policy()
    one = policy.prompt_ids("5+5=")
    left = torch.tensor([[policy.pad_id] * 3 + one])
    right = torch.tensor([one + [policy.pad_id] * 3])
    expected = [0, 1, 0, 1, 1]
    assert policy.position_ids(left, (left != policy.pad_id).long()).tolist() == [[0, 0, 0] + expected]
    assert policy.position_ids(right, (right != policy.pad_id).long()).tolist() == [expected + [0, 0, 0]]


def test_offsets_shift_a_rows_coupled_ids_by_a_hash_of_its_prompt():
    policy = make_policy(offsets=16)
    base = torch.tensor([0, 3, 2, 1, 0, 3, 2, 1, 1, 2, 3, 4, 5])
    shifts = set()
    for text in ["047+085=", "048+085=", "123+456=", "999+001=", "500+500="]:
        full = torch.tensor([policy.prompt_ids(text) + policy.encode("231") + [policy.eos_id]])
        ids = policy.position_ids(full, torch.ones_like(full))[0]
        shift = int(ids[1] - 3)
        assert 0 <= shift <= 16 and torch.equal(ids, torch.where(base > 0, base + shift, 0))  # BOS and '+' stay at 0
        prompt = torch.tensor([[policy.pad_id] * 2 + policy.prompt_ids(text)])  # left-padded prompt alone: same ids
        assert policy.position_ids(prompt, (prompt != policy.pad_id).long())[0, 2:].tolist() == ids[:9].tolist()
        shifts.add(shift)
    assert len(shifts) > 2


def test_a_prompt_without_the_separator_is_a_clear_error():
    policy = make_policy()
    with pytest.raises(ValueError, match="position rule 'coupled': row 0 has no '='"):
        sample(policy, [policy.prompt_ids("12+34")], max_new_tokens=3, temperature=0)


@pytest.mark.parametrize("positions,offsets", [("coupled", 0), ("coupled", 16), (None, 0)])
def test_greedy_sampling_equals_a_full_forward_with_the_same_ids(positions, offsets):
    """The KV-cache sampler (left-padded prefill, one-token steps) gives the tokens and log-probs of one
    forward over prompt + completion at the rule's ids; for a rule-less policy also at default ids."""
    policy = make_policy(positions, offsets=offsets)
    prompts = [policy.prompt_ids(t) for t in TEXTS]
    out = sample(policy, prompts, max_new_tokens=6, temperature=0)
    for prompt, completion, logprobs in zip(prompts, out.completion_ids, out.logprobs):
        ids = torch.tensor([prompt + completion])
        positions_ids = policy.position_ids(ids, torch.ones_like(ids))
        with torch.no_grad():
            logits = policy.model(ids, position_ids=positions_ids).float()
        steps = logits[0, len(prompt) - 1 : -1]
        assert steps.argmax(-1).tolist() == completion  # greedy: every token is the argmax there
        full = torch.log_softmax(steps, -1).gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)
        torch.testing.assert_close(torch.tensor(logprobs), full, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(policy.sequence_logprobs(ids, torch.ones_like(ids))[0, len(prompt) - 1:].detach(),
                                   full, atol=1e-4, rtol=1e-4)


def test_the_rule_changes_the_outputs():
    coupled, plain = make_policy("coupled"), make_policy(None)
    ids = torch.tensor([coupled.prompt_ids("047+085=231")])
    assert not torch.allclose(coupled.sequence_logprobs(ids, torch.ones_like(ids)),
                              plain.sequence_logprobs(ids, torch.ones_like(ids)))


def test_a_policy_without_a_rule_runs_the_default_positions():
    policy = make_policy(None)
    assert policy.positions is None and not hasattr(policy.model.config, CONFIG_KEY)
    ids, attention, _ = pack([policy.prompt_ids(t) for t in TEXTS], [policy.encode("21")] * len(TEXTS), policy.pad_id)
    explicit = policy.model(ids, position_ids=policy.position_ids(ids, attention), attention_mask=attention)
    assert torch.equal(policy.model(ids, attention_mask=attention), explicit)


@pytest.mark.parametrize("shared_prefix", [True, False])
def test_completion_logprobs_equal_the_plain_forward_under_the_rule(shared_prefix):
    """The prefix-sharing forward and the bucketed forward (RL's paths) give sequence_logprobs' numbers."""
    policy = make_policy()
    prompts = [policy.prompt_ids(t) for t in TEXTS for _ in range(2)]
    completions = [policy.encode("0123456"[: 1 + i % 5]) + [policy.eos_id] for i in range(len(prompts))]
    batch = pack_completions(prompts, completions, policy.pad_id)
    if shared_prefix:
        ours = policy.completion_logprobs(batch)[0]
    else:
        logits, _ = bucketed_forward(policy.model, batch.prompt_ids, batch.prompt_lens, batch.completion_ids,
                                     batch.prompt_of, batch.lengths, rows_per_bucket=3, positions=policy.positions)
        ours = logits.float().log_softmax(-1).gather(-1, batch.completion_ids[:, :, None]).squeeze(-1)
    ids, attention, mask = pack(prompts, completions, policy.pad_id)
    full = policy.sequence_logprobs(ids, attention)
    for row, (prompt, completion) in enumerate(zip(prompts, completions)):
        expected = full[row, len(prompt) - 1 : len(prompt) - 1 + len(completion)]
        torch.testing.assert_close(ours[row, : len(completion)], expected, atol=1e-4, rtol=1e-4)


def test_the_server_decoder_follows_the_rule():
    policy = make_policy()
    prompts = [policy.prompt_ids(t) for t in TEXTS]
    expected = sample(policy, prompts, max_new_tokens=5, temperature=0).completion_ids
    decoder = StepDecoder(policy, context=64)
    decoder.add(prompts, [5] * len(prompts))
    tokens = []
    for _ in range(5):
        chosen = decoder.logits.argmax(-1)
        tokens.append(chosen.tolist())
        decoder.advance(chosen)
    for row, ours in enumerate(expected):
        assert [step[row] for step in tokens][: len(ours)] == ours


def test_save_and_load_keep_the_rule(tmp_path):
    policy = make_policy(offsets=5)
    policy.save(tmp_path)
    loaded = LMPolicy.load(tmp_path)
    assert loaded.positions is not None and (loaded.positions.name, loaded.positions.offsets) == ("coupled", 5)
    ids = torch.tensor([policy.prompt_ids("047+085=231")])
    ones = torch.ones_like(ids)
    assert torch.equal(loaded.sequence_logprobs(ids, ones), policy.sequence_logprobs(ids, ones))
    # Plain transformers loads it too, and gives our numbers once it is handed the rule's ids.
    hf = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        theirs = hf(ids, position_ids=policy.position_ids(ids, torch.ones_like(ids))).logits
        ours = policy.model(ids, position_ids=policy.position_ids(ids, torch.ones_like(ids)))
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="positions: expected one of coupled"):
        LMPolicy.build(ARCH, ALPHABET, seed=0, positions="sideways")
    with pytest.raises(ValueError, match="position_offsets: shifts the ids of a position rule"):
        LMPolicy.build(ARCH, ALPHABET, seed=0, position_offsets=3)


def test_nope_cached_decoding_equals_its_full_forward_and_plain_transformers(tmp_path):
    """NoPE (position_encoding = 'none'): no position enters the model, so the sampler's cached
    steps equal one full forward, shifting positions changes nothing, and HF's Llama agrees."""
    policy = make_policy(None, ARCH.model_copy(update={"position_encoding": "none"}))
    prompts = [policy.prompt_ids(t) for t in TEXTS]
    out = sample(policy, prompts, max_new_tokens=6, temperature=0)
    policy.save(tmp_path)
    hf = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    for prompt, completion, logprobs in zip(prompts, out.completion_ids, out.logprobs):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            logits = policy.model(ids)
            shifted = policy.model(ids, position_ids=torch.arange(ids.shape[1])[None] * 7 + 3)
            theirs = hf(ids).logits
        torch.testing.assert_close(shifted, logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(theirs, logits, atol=1e-4, rtol=1e-4)
        steps = logits[0, len(prompt) - 1 : -1].float()
        assert steps.argmax(-1).tolist() == completion
        full = torch.log_softmax(steps, -1).gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)
        torch.testing.assert_close(torch.tensor(logprobs), full, atol=1e-4, rtol=1e-4)


def test_a_recipe_with_a_coupled_env_trains_and_saves_a_coupled_policy(tmp_path):
    """The env's `position_rule` reaches the freshly built policy, imitation and GRPO run under it, and
    the saved policies keep it (what `alphaloop eval` and the server load)."""
    from alphaloop import runner
    from alphaloop.recipe import validate_recipe

    recipe = validate_recipe({
        "name": "coupled-tiny", "seed": 0, "threads": 1,
        "env": {"name": "arithmetic", "knobs": {"answer_format": "reversed", "positions": "coupled",
                                               "position_offsets": 4, "misconception_rate": 0.0}},
        "policy": {"arch": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2,
                            "intermediate_size": 64}},
        "stages": [{"kind": "imitate", "steps": 4, "batch_size": 8, "eval_every": 4, "eval_problems": 4,
                    "checkpoint_every": 4},
                   {"kind": "rl", "steps": 2, "prompts_per_step": 2, "group_size": 2, "eval_every": 2,
                    "eval_problems": 4, "checkpoint_every": 2}]})
    summary = runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / "run"), show_progress=False)
    assert summary["status"] == "complete"
    for stage in summary["stages"]:
        policy = LMPolicy.load(tmp_path / "run" / stage["policy_dir"])
        assert (policy.positions.name, policy.positions.offsets) == ("coupled", 4)


def test_random_positions_are_ordered_subsets_of_the_span_on_either_padding():
    from alphaloop.policies.positions import random_positions

    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])
    seen = set()
    for seed in range(200):
        ids = random_positions(mask, 32, torch.Generator().manual_seed(seed))
        for row, real in zip(ids.tolist(), mask.bool().tolist()):
            kept = [i for i, r in zip(row, real) if r]
            assert kept == sorted(set(kept)) and all(0 <= i < 32 for i in kept)   # distinct, increasing
            assert all(i == 0 for i, r in zip(row, real) if not r)
            seen.update(kept)
    assert seen == set(range(32))   # every id of the span is drawn: large ids get trained
    again = random_positions(mask, 32, torch.Generator().manual_seed(5))
    assert torch.equal(again, random_positions(mask, 32, torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError, match="more than the span of 6 ids"):
        random_positions(mask, 6)


def test_given_position_ids_replace_the_default_in_the_training_forward():
    from alphaloop.learners.imitate import imitation_loss

    policy = make_policy(positions=None)
    input_ids, attention, completion = pack([policy.prompt_ids(t) for t in TEXTS],
                                            [policy.encode("12") + [policy.eos_id]] * len(TEXTS), policy.pad_id)
    default = imitation_loss(policy, input_ids, attention, completion)
    same = imitation_loss(policy, input_ids, attention, completion,
                          position_ids=(attention.cumsum(-1) - 1).clamp_min(0))
    moved = imitation_loss(policy, input_ids, attention, completion, position_ids=3 * attention.cumsum(-1))
    assert torch.allclose(default, same) and not torch.allclose(default, moved)


def test_the_judge_reads_a_coupled_policy_with_its_own_ids():
    """judge@K's one-forward verdict path and its general path (sequence_logprobs) agree under the rule."""
    from alphaloop.episode import Episode
    from alphaloop.scorers import JudgeScorer

    judge = JudgeScorer(make_policy(offsets=4))
    episodes = [Episode(observations=[t], actions=["2310"]) for t in TEXTS]
    contexts = [judge._context(e) for e in episodes]
    general = [y - n for y, n in zip(judge._verdict_logprobs(contexts, judge.yes_ids),
                                     judge._verdict_logprobs(contexts, judge.no_ids))]
    assert judge.score(episodes) == pytest.approx(general, abs=1e-4)
