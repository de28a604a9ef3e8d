"""The LM policy: a causal language model + its tokenizer (+ an optional value head).

Llama-architecture models run on our `LeanLlama` (same weights, less overhead, a preallocated
KV cache); any other HF causal LM runs through `AutoModelForCausalLM` behind the same forward
signature. Either way a policy saves in HF format (`config.json`, `model.safetensors`,
`tokenizer.json`), so `AutoModelForCausalLM.from_pretrained(dir)` and
`AutoTokenizer.from_pretrained(dir)` load what we train.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from alphaloop import checkpoint as ckpt
from alphaloop.batch import CompletionBatch
from alphaloop.errors import CorruptCheckpointError
from alphaloop.policies.arch import LMArch
from alphaloop.policies.llama import LeanLlama, lean_supported
from alphaloop.policies.positions import CONFIG_KEY, OFFSETS_KEY, RULES, default_positions, position_rule
from alphaloop.policies.prefix import bucketed_forward, completion_forward, long_completions
from alphaloop.policies.tokenizer import CharEncoder, build_char_tokenizer

VALUE_HEAD_FILE = "value_head.safetensors"


class HFCausalLM(nn.Module):
    """Any HF causal LM behind `LeanLlama`'s forward signature; its cache is HF's own."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf
        self.config = hf.config
        # transformers 5.x renamed the forward's `past_key_values` to `cache` (5.24 warns; the old name
        # goes in 5.40): pass whichever this version's model takes.
        self._cache_arg = "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"

    def new_cache(self, batch: int, max_len: int) -> dict:
        return {"past": None, "mask": None}

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, kv_cache: dict | None = None,
                return_hidden: bool = False, logits_to_keep: int = 0,
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
        kwargs = {}
        if kv_cache is not None:
            # HF wants the mask over past + new tokens and returns the grown cache.
            mask = mask if kv_cache["mask"] is None else torch.cat([kv_cache["mask"], mask], dim=1)
            kv_cache["mask"] = mask
            kwargs = {self._cache_arg: kv_cache["past"], "use_cache": True}
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        out = self.hf(input_ids=input_ids, attention_mask=mask, output_hidden_states=return_hidden, **kwargs)
        if kv_cache is not None:
            kv_cache["past"] = out["cache"] if "cache" in out else out.past_key_values
        logits, hidden = out.logits, out.hidden_states[-1] if return_hidden else None
        if logits_to_keep > 0:
            logits = logits[:, -logits_to_keep:]
            hidden = None if hidden is None else hidden[:, -logits_to_keep:]
        return (logits, hidden) if return_hidden else logits


def _wrap(hf_model: nn.Module) -> nn.Module:
    """LeanLlama for Llama configs it reproduces, else the generic wrapper."""
    if lean_supported(hf_model.config) is None:
        lean = LeanLlama(hf_model.config)
        lean.load_hf_state_dict(hf_model.state_dict())
        return lean
    return HFCausalLM(hf_model)


class LMPolicy(nn.Module):
    """What acts and what learns: `model` (forward(input_ids, position_ids, attention_mask,
    kv_cache, return_hidden, logits_to_keep) -> logits), `tokenizer`, optional `value_head` (PPO critic),
    and `positions`, the position rule its config names (`positions.py`; None: token t at position t)."""

    def __init__(self, model: nn.Module, tokenizer, value_head: nn.Linear | None = None) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.value_head = value_head
        if tokenizer.pad_token_id is None:  # e.g. GPT-2: pad with EOS (masked out anyway)
            tokenizer.pad_token = tokenizer.eos_token
        self.positions = position_rule(model.config, tokenizer)  # saved with the config, so every load keeps it
        self._chars = CharEncoder.of(tokenizer)  # a fast encode for character tokenizers (ours)

    # -- construction -----------------------------------------------------------------
    @classmethod
    def build(cls, arch: LMArch, alphabet: str, seed: int, positions: str | None = None,
              position_offsets: int = 0) -> LMPolicy:
        """A fresh Llama over a character tokenizer; the same seed gives the same weights. `positions`
        names a position rule (`positions.RULES`, e.g. "coupled" for an env that asks for it), and
        `position_offsets` its largest per-sequence offset (`positions.py`)."""
        tokenizer = build_char_tokenizer(alphabet)
        config = arch.llama_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id,
                                   tokenizer.pad_token_id)
        if positions is not None:
            if positions not in RULES:
                raise ValueError(f"positions: expected one of {', '.join(RULES)} or None, got {positions!r}")
            setattr(config, CONFIG_KEY, positions)  # written to config.json by save()
            if position_offsets:
                setattr(config, OFFSETS_KEY, int(position_offsets))
        elif position_offsets:
            raise ValueError("position_offsets: shifts the ids of a position rule; give positions too")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LeanLlama(config)
        return cls(model, tokenizer)

    @classmethod
    def from_pretrained(cls, path_or_name: str) -> LMPolicy:
        """Any HF causal LM directory or hub name (Llama -> the lean path)."""
        path = Path(path_or_name)
        config = AutoConfig.from_pretrained(path_or_name)
        weights = path / "model.safetensors"
        if lean_supported(config) is None and weights.is_file():
            model = LeanLlama(config)  # direct load: skips building the HF model twice
            model.load_hf_state_dict(load_file(str(weights)))
        else:
            hf = AutoModelForCausalLM.from_pretrained(path_or_name, dtype=torch.float32)
            model = _wrap(hf)
        tokenizer = AutoTokenizer.from_pretrained(path_or_name)
        value_head = None
        if (path / VALUE_HEAD_FILE).is_file():
            state = load_file(str(path / VALUE_HEAD_FILE))
            value_head = nn.Linear(state["weight"].shape[1], 1)
            value_head.load_state_dict(state)
        return cls(model, tokenizer, value_head)

    @classmethod
    def load(cls, directory: str | Path) -> LMPolicy:
        """Restore what `save` wrote (weights, tokenizer and the value head if any).

        A directory written atomically (a stage's final policy) is first checked against its
        MANIFEST.json, so flipped bits or a cut-off file are refused instead of used; one without
        (a pretrained Hugging Face directory) loads as it is. A file that cannot be parsed raises
        CorruptCheckpointError naming the directory and, where it can be found, the file."""
        directory = Path(directory)
        ckpt.verify_if_manifest(directory)
        if not (directory / "config.json").is_file():
            raise ckpt.MissingCheckpointError(f"directory: {directory} holds no config.json; expected a saved policy")
        try:
            return cls.from_pretrained(str(directory))
        except Exception as exc:  # transformers, safetensors and tokenizers raise many types
            raise _unreadable_policy(directory, exc) from exc

    def save(self, directory: str | Path) -> None:
        """config.json + model.safetensors + tokenizer files (+ value_head.safetensors)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if isinstance(self.model, LeanLlama):
            self.model.config.save_pretrained(directory)
            save_file(self.model.hf_state_dict(), str(directory / "model.safetensors"),
                      metadata={"format": "pt"})
        else:
            self.model.hf.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)
        if self.value_head is not None:
            state = {k: v.contiguous() for k, v in self.value_head.state_dict().items()}
            save_file(state, str(directory / VALUE_HEAD_FILE))

    def add_value_head(self) -> nn.Linear:
        """A zero-initialised critic V(s) = w·h + b on the final hidden state (starts at V = 0)."""
        if self.value_head is None:
            weight = next(self.model.parameters())
            self.value_head = nn.Linear(self.hidden_size, 1).to(device=weight.device, dtype=weight.dtype)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        return self.value_head

    # -- tokens -----------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        if self._chars is not None:
            return self._chars.encode(text)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def prompt_ids(self, text: str) -> list[int]:
        """Prompts start with BOS (when the tokenizer has one)."""
        bos = self.bos_id
        return ([bos] if bos is not None else []) + self.encode(text)

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    @property
    def bos_id(self) -> int | None:
        return self.tokenizer.bos_token_id

    @property
    def hidden_size(self) -> int:
        config = self.model.config
        return getattr(config, "hidden_size", None) or config.n_embd

    @property
    def num_parameters(self) -> int:
        """Distinct trainable tensors' elements (tied embeddings counted once)."""
        return sum(p.numel() for p in self.parameters())

    def position_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Position ids [B,T] of whole sequences (prompts, or prompt + completion rows), left or right
        padded: the policy's rule, else the default (the t-th real token at t). Decoding continues
        from the last one, +1 per token, under either."""
        if self.positions is None:
            return default_positions(attention_mask)
        return self.positions(input_ids, attention_mask)

    def _rule_positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """The rule's ids, or None so that a policy without a rule runs exactly the forward it always has."""
        return None if self.positions is None else self.positions(input_ids, attention_mask)

    # -- scoring ----------------------------------------------------------------------
    def sequence_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          return_values: bool = False, position_ids: torch.Tensor | None = None,
                          ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """log pi(x_{t+1} | x_{<=t}) for t = 0..T-2, shape [B, T-1] (and values V(x_{<=t}) [B, T-1]).

        Computed as logit[target] - logsumexp(logits): the same number as log_softmax + gather
        without writing a second [B,T,V] tensor. Positions whose target is padding hold
        meaningless values; callers mask them. `position_ids` [B,T], when given, replace the policy's
        own (a training-time augmentation such as randomised positions).
        """
        if input_ids.shape != attention_mask.shape:
            raise ValueError(f"attention_mask: expected shape {tuple(input_ids.shape)} like input_ids, "
                             f"got {tuple(attention_mask.shape)}")
        if return_values and self.value_head is None:
            raise ValueError("return_values=True needs a value head: call add_value_head() first")
        if position_ids is None:
            position_ids = self._rule_positions(input_ids, attention_mask)
        out = self.model(input_ids, position_ids=position_ids, attention_mask=attention_mask,
                         return_hidden=return_values)
        logits, hidden = out if return_values else (out, None)
        logits = logits[:, :-1].float()
        targets = input_ids[:, 1:, None]
        logprobs = logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        if not return_values:
            return logprobs
        values = self.value_head(hidden[:, :-1]).squeeze(-1).float()
        return logprobs, values

    def completion_logprobs(self, batch: CompletionBatch, return_values: bool = False,
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(log pi(c_t | prompt, c_<t) [N,Tc], the logits [N,Tc,V] they come from, values [N,Tc] or
        None) for every completion token of `batch` (see `learners.sequences.CompletionBatch`).

        Our Llama computes each distinct prompt once for all its completions (`prefix.py`), or, when
        completions dwarf their prompts (agent transcripts), runs plain forwards over length-sorted
        buckets of rows; any other model runs the plain forward over prompt + completion rows and
        keeps the completion positions. Padding positions hold meaningless values; callers mask them.
        """
        if return_values and self.value_head is None:
            raise ValueError("return_values=True needs a value head: call add_value_head() first")
        if isinstance(self.model, LeanLlama) and long_completions(batch.prompt_lens, batch.lengths):
            logits, hidden = bucketed_forward(self.model, batch.prompt_ids, batch.prompt_lens, batch.completion_ids,
                                              batch.prompt_of, batch.lengths, positions=self.positions)
        elif isinstance(self.model, LeanLlama):
            logits, hidden = completion_forward(self.model, batch.prompt_ids, batch.prompt_lens,
                                                batch.completion_ids, batch.prompt_of, batch.lengths,
                                                prompt_positions=self._prompt_positions(batch))
        else:
            input_ids, attention = batch.full()
            logits, hidden = self.model(input_ids, position_ids=self._rule_positions(input_ids, attention),
                                        attention_mask=attention, return_hidden=True)
            steps = torch.arange(batch.completion_ids.shape[1])
            # Completion token t of row n sits at prompt_len + t; the state predicting it one earlier.
            at = (batch.prompt_lens[batch.prompt_of][:, None] - 1 + steps).clamp_max(input_ids.shape[1] - 1)
            logits = logits.gather(1, at[:, :, None].expand(-1, -1, logits.shape[-1]))
            hidden = hidden.gather(1, at[:, :, None].expand(-1, -1, hidden.shape[-1]))
        logits = logits.float()
        targets = batch.completion_ids[:, :, None]
        logprobs = logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        values = self.value_head(hidden).squeeze(-1).float() if return_values else None
        return logprobs, logits, values

    def completion_values(self, batch: CompletionBatch, at: torch.Tensor | None = None) -> torch.Tensor:
        """The value head's V [N,Tc] at the states that predict each completion token, without the LM
        head's logits and log-probs (what a reward model reads); with `at` [N], only V [N] at
        position at[n] of each row, and our Llama computes the last layer's MLP for those states only."""
        if self.value_head is None:
            raise ValueError("completion_values needs a value head: call add_value_head() first")
        if not isinstance(self.model, LeanLlama):
            values = self.completion_logprobs(batch, return_values=True)[2]
            return values if at is None else values.gather(1, at[:, None]).squeeze(1)
        keep = None
        if at is not None:
            keep = torch.zeros(batch.completion_ids.shape, dtype=torch.bool, device=at.device)
            keep[torch.arange(len(at), device=at.device), at] = True
        _, hidden = completion_forward(self.model, batch.prompt_ids, batch.prompt_lens, batch.completion_ids,
                                       batch.prompt_of, batch.lengths, with_logits=False,
                                       prompt_positions=self._prompt_positions(batch), keep=keep)
        if at is not None:
            hidden = hidden[torch.arange(len(at), device=at.device), at]
        return self.value_head(hidden).squeeze(-1).float()

    def _prompt_positions(self, batch: CompletionBatch) -> torch.Tensor | None:
        """The rule's ids of the batch's distinct prompts [P,Tp] (completions continue from each prompt's
        last id), or None for the default positions."""
        if self.positions is None:
            return None
        real = torch.arange(batch.prompt_ids.shape[1], device=batch.prompt_ids.device) < batch.prompt_lens[:, None]
        return self.positions(batch.prompt_ids, real.long())


def _unreadable_policy(directory: Path, exc: Exception) -> CorruptCheckpointError:
    """The error for a policy directory that failed to load with `exc`: the loaders' messages rarely
    say which file was bad, so the JSON files and safetensors headers are parsed again (only now, on
    failure, so that good loads pay nothing) to name the first that does not parse."""
    for file in sorted(directory.iterdir()):
        try:
            if not file.is_file():
                continue
            if file.suffix == ".json":
                json.loads(file.read_text())
            elif file.suffix == ".safetensors":
                with safe_open(str(file), "pt"):
                    pass
        except (OSError, ValueError, SafetensorError) as probe:
            return ckpt.unreadable(directory, file.name, probe)
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    return CorruptCheckpointError(f"checkpoint {directory}: cannot load the saved policy ({reason[:300]})")


def build_tiny_hf_model(directory: str | Path, alphabet: str = "0123456789+= ", seed: int = 0) -> Path:
    """A tiny random GPT-2 (2 layers, width 32) + character tokenizer, saved as an HF directory.

    Proves that a non-Llama HF causal LM works as a policy without downloading anything.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = build_char_tokenizer(alphabet)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory

