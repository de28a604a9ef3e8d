"""Made-up names for agent envs: words too many to memorise, so that a policy copies them.

A small policy given a few dozen fixed names (file stems, config keys, vendors) learns each as a word
and recalls it, instead of learning to copy the name letter by letter from what it reads; recall does
not carry to a name it never saw, and it competes with copying long enough to stall learning. Mixing
in names made of two random syllables (4,900 of them) leaves copying as the only way to be right.
"""

from __future__ import annotations

import random

CONSONANTS = "bdfgklmnprstvz"
SYLLABLES = tuple(c + v for c in CONSONANTS for v in "aeiou")


def made_up(rng: random.Random) -> str:
    """Two consonant-vowel syllables (`tiro`): 4,900 names, none of them learnable as a word."""
    return rng.choice(SYLLABLES) + rng.choice(SYLLABLES)


def usual_or_made_up(rng: random.Random, words: tuple[str, ...], made_up=made_up, share: float = 0.5) -> str:
    """One of the usual `words`, or a made-up name with probability `share` (even odds by default). The
    made-up half is too many to memorise, so a policy learns to copy names letter by letter from what it
    reads instead of recalling a word it knows: with usual words alone, held-out shell renames wrote a
    known stem for the one just read (`mv tide.csv notes.doc`; held-out rename pass^8 0.50 and 0.0 in
    two runs, 0.57 made up), and an invoices policy wrote one vendor for every document after 1,000
    imitation steps while copying numbers and totals right."""
    return rng.choice(words) if rng.random() < 1 - share else made_up(rng)
