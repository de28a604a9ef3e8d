"""The words `shell` tasks are made of (`envs/shell.py`): file stems, extensions, folders, config keys
and values, each either a usual word or a made-up one, and the miscopies of them that the expert
makes on purpose to show how to recover.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from alphaloop.envs.names import CONSONANTS, SYLLABLES, usual_or_made_up

# Many extensions, folders and keys, drawn independently of the template: a policy that learns to
# copy them from the prompt generalises to the (template, extension) pairs held out, one that binds
# each template to a few extensions does not (measured with 6 extensions and a fixed folder and
# rename target per extension: 0% on heldout).
EXTENSIONS = ("tmp", "bak", "log", "txt", "csv", "md", "dat", "ini", "out", "err", "json", "xml", "py", "sh", "doc",
              "png")
FOLDERS = ("trash", "backup", "logs", "notes", "data", "docs", "archive", "misc", "keep", "work", "store", "media")
CONFIG_KEYS = ("port", "host", "debug", "level", "user", "mode", "color", "size", "lang", "zone", "retry", "limit",
               "theme", "depth", "speed", "cache", "proxy", "quota", "scale", "shift", "tone", "unit", "width",
               "alpha", "beta", "gamma", "delta", "echo", "kilo", "lima")
# Half the keys a fix task names are made up (two consonant-vowel syllables: `tiro`, `mode`), too many
# to memorise: the policy has to copy the key out of the prompt letter by letter. With the 30 real keys
# alone it learnt them as words, and the held-out `set mode to 3` came out as `grep tone= main.cfg`.
CONFIG_VALUES = ("0", "1", "3", "5", "10", "22", "80", "100", "443", "8080", "db", "web", "api", "low", "mid",
                 "high", "fast", "safe", "slow", "red", "blue", "green", "en", "fr", "eu", "us", "dark", "light",
                 "on", "off")
CONFIG_FILES = ("app.cfg", "db.cfg", "web.cfg", "main.cfg")
STEMS = ("ant", "bee", "cat", "cow", "dog", "eel", "elk", "fox", "gnu", "hen", "jay", "owl", "pig", "ram", "rat",
         "yak", "bay", "cove", "dune", "fern", "glen", "hill", "isle", "lake", "moss", "peak", "reef", "sand",
         "tide", "vale", "wave", "plan", "memo", "todo", "draft", "old", "new", "final", "copy", "notes")


def stems(rng: random.Random, count: int) -> list[str]:
    """`count` distinct file stems (`tide`, `kobu`)."""
    names: list[str] = []
    while len(names) < count:
        name = usual_or_made_up(rng, STEMS)
        names += [name] if name not in names else []
    return names


def extension(rng: random.Random, avoid: tuple[str, ...] = ()) -> str:
    """A file extension (`csv`, `tam`) other than those in `avoid`."""
    while True:
        ext = usual_or_made_up(rng, EXTENSIONS, lambda r: r.choice(SYLLABLES) + r.choice(CONSONANTS))
        if ext not in avoid:
            return ext


def folder(rng: random.Random) -> str:
    """A folder to sort into (`backup`, `dalo`)."""
    return usual_or_made_up(rng, FOLDERS)


def config_key(rng: random.Random) -> str:
    """A config key (`port`, `tiro`)."""
    return usual_or_made_up(rng, CONFIG_KEYS)


def miscopied(word: str, rng: random.Random, usable: Callable[[str], bool] = lambda wrong: True) -> str:
    """`word` with one letter changed, dropped or added (`isle` -> `isol`, `hen` -> `hena`), as a policy
    copying names letter by letter gets them wrong; only a miscopy that `usable` accepts (one naming no
    file that exists, say: the mistake must fail, not touch something else)."""
    letters = string.ascii_lowercase
    while True:
        at = rng.randrange(len(word) + 1)
        kind = rng.choice(("change", "drop", "add")) if len(word) > 1 else "add"
        if kind == "add":
            wrong = word[:at] + rng.choice(letters) + word[at:]
        else:
            at = min(at, len(word) - 1)
            wrong = word[:at] + (rng.choice(letters) if kind == "change" else "") + word[at + 1:]
        if wrong != word and usable(wrong):
            return wrong
