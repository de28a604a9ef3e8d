"""Policies: what acts. LM policies (a causal LM + tokenizer) and their KV-cache sampler.

The LM names are re-exported lazily (PEP 562) so that importing a light sibling module such
as the game nets does not pay for importing `transformers`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LMArch": "alphaloop.policies.lm",
    "LMPolicy": "alphaloop.policies.lm",
    "build_tiny_hf_model": "alphaloop.policies.lm",
    "Samples": "alphaloop.policies.sampler",
    "sample": "alphaloop.policies.sampler",
    "build_char_tokenizer": "alphaloop.policies.tokenizer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'alphaloop.policies' has no attribute {name!r}")
