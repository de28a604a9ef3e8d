"""What `alphaloop serve` serves: each command-line argument loaded as one model id.

An argument is a directory, optionally named: `NAME=PATH` serves PATH as model id NAME. PATH is

* a run directory (it holds `recipe.toml`): the policy of its last stage that finished training one
  (`stages/<i>-<stage>/result.json` names it), an LM policy or a game net as the recipe's
  `policy.kind` says; its id is the directory's name (`runs/quickstart` -> `quickstart`);
* a policy directory (`config.json`, Hugging Face format) or a game-net directory (`net_config.json`),
  such as a stage's `policy/` or a checkpoint's `step-N/policy/`, or a checkpoint directory `step-N`
  itself. Inside a run its id says where it is: `quickstart/rl` for `runs/quickstart/stages/1-rl/policy`,
  `quickstart/rl/step-0000020` for a checkpoint; elsewhere the directory's name.

An LM policy inside a run is served with its env's chat template (`serve.chat`); a game net plays the
game of its run, or, outside a run, the registered game whose board and moves fit the net.

Only the files are read here: run directories are parsed with `tomllib` and `json`, not through the
recipe and runner modules, which sit above this layer.
"""

from __future__ import annotations

import re
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from alphaloop.errors import UserError
from alphaloop.rundir import stage_dirs, trained_policies
from alphaloop.serve.chat import ChatTemplate, template_for

if TYPE_CHECKING:  # types only: loading a game net never needs transformers, nor a policy the engine
    from alphaloop.policies.lm import LMPolicy
    from alphaloop.policies.nets import PolicyValueNet
    from alphaloop.serve.engine import Engine

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:/-]*$")
DEFAULT_CONTEXT = 2048   # for a model whose config states no maximum length


@dataclass
class ServedLM:
    """An LM policy behind the OpenAI endpoints; `context` is prompt + completion, in tokens."""

    id: str
    source: Path
    policy_dir: Path
    env: str | None
    template: ChatTemplate
    context: int
    policy: LMPolicy
    created: int
    engine: Engine | None = None


@dataclass
class ServedGame:
    """A game net behind `/v1/games/{game}/move`; `lock` keeps one search per net at a time."""

    id: str
    source: Path
    net_dir: Path
    game: str
    net: PolicyValueNet
    created: int
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Target:
    """One argument resolved: what to load, and what is known about it."""

    id: str
    source: Path
    kind: str          # "lm" or "net"
    directory: Path    # the policy or net directory itself
    env: str | None    # the env (or game) of its run, if it is in one


def _read_recipe(run: Path, arg: str) -> dict:
    try:
        return tomllib.loads((run / "recipe.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{arg}: {run / 'recipe.toml'} cannot be read ({exc})") from None


def final_policy(run: Path, arg: str) -> Path:
    """The policy directory of the run's last stage that finished training one."""
    trained = trained_policies(run, arg)
    if not trained:
        checkpoints = sorted((c for s in stage_dirs(run) for c in (s / "checkpoints").glob("step-*")),
                             key=lambda c: (c.parent.parent.name.split("-", 1)[0].zfill(6), c.name))
        hint = f"; serve a checkpoint instead, e.g. {checkpoints[-1]}" if checkpoints else ""
        raise UserError(f"{arg}: no stage of this run has finished training a policy yet{hint}")
    return list(trained.values())[-1]


def _run_of(path: Path) -> Path | None:
    """The run directory `path` lies in (a recipe.toml up to five levels above), or None."""
    for parent in list(path.parents)[:5]:
        if (parent / "recipe.toml").is_file() and (parent / "stages").is_dir():
            return parent
    return None


def _id_inside_run(run: Path, path: Path) -> str:
    """`run/stage` for a stage's policy, `run/stage/step-N` for a checkpoint, else `run/relative/path`."""
    parts = path.relative_to(run).parts
    if len(parts) >= 2 and parts[0] == "stages":
        stage = parts[1].split("-", 1)[-1]
        if len(parts) >= 4 and parts[2] == "checkpoints":
            return f"{run.name}/{stage}/{parts[3]}"
        return f"{run.name}/{stage}"
    return f"{run.name}/{'/'.join(parts)}"


def resolve(arg: str) -> Target:
    """What argument `arg` ([NAME=]PATH) names; UserError for anything that cannot be served."""
    name, text = None, arg
    if not Path(arg).exists() and "=" in arg:
        name, text = arg.split("=", 1)
        if not NAME.match(name):
            raise UserError(f"{arg}: the model name {name!r} must be letters, digits and . _ @ : / - "
                            "(starting with a letter or digit)")
    path = Path(text).expanduser()
    if not path.exists():
        raise UserError(f"{arg}: no such directory")
    if not path.is_dir():
        raise UserError(f"{arg}: expected a directory (a run, a policy or a checkpoint), got a file")
    path = path.resolve()
    if (path / "recipe.toml").is_file():
        recipe = _read_recipe(path, arg)
        kind = str((recipe.get("policy") or {}).get("kind", "lm"))
        env = (recipe.get("env") or {}).get("name")
        return Target(name or path.name, path, kind, final_policy(path, arg), env if isinstance(env, str) else None)
    directory = path / "policy" if (path / "policy").is_dir() and not (path / "config.json").is_file() else path
    if (directory / "config.json").is_file():
        kind = "lm"
    elif (directory / "net_config.json").is_file():
        kind = "net"
    else:
        raise UserError(f"{arg}: not a run directory (recipe.toml), a policy directory (config.json), a game-net "
                        "directory (net_config.json) or a checkpoint holding one of them")
    run = _run_of(path)
    env = None
    if run is not None:
        recipe_env = (_read_recipe(run, arg).get("env") or {}).get("name")
        env = recipe_env if isinstance(recipe_env, str) else None
    default = _id_inside_run(run, path) if run is not None else path.name
    return Target(name or default, path, kind, directory, env)


def _created(directory: Path) -> int:
    try:
        return int(max(p.stat().st_mtime for p in directory.iterdir()))
    except (OSError, ValueError):
        return 0


def context_length(policy) -> int:
    """The longest prompt + completion the model was built for (its config's maximum positions)."""
    config = policy.model.config
    for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_CONTEXT


def load_lm(target: Target) -> ServedLM:
    from alphaloop.policies.lm import LMPolicy

    policy = LMPolicy.load(target.directory)
    return ServedLM(target.id, target.source, target.directory, target.env, template_for(target.env),
                    context_length(policy), policy, _created(target.directory))


def _game_of(net, env: str | None, arg: str) -> str:
    from alphaloop.games.registry import game_class, game_names

    def fits(name: str) -> bool:
        cls = game_class(name)
        return tuple(cls.observation_shape) == tuple(net.observation_shape) and cls.num_actions == net.num_actions

    if env is not None:
        if env not in game_names():
            raise UserError(f"{arg}: its run plays {env!r}, which is not a registered game ({', '.join(game_names())})")
        if not fits(env):
            raise UserError(f"{arg}: the net there does not fit {env} (observation {net.observation_shape}, "
                            f"{net.num_actions} actions)")
        return env
    matches = [name for name in game_names() if fits(name)]
    if not matches:
        raise UserError(f"{arg}: the net (observation {net.observation_shape}, {net.num_actions} actions) fits none "
                        f"of the games {', '.join(game_names())}")
    return matches[0]


def load_game(target: Target, arg: str) -> ServedGame:
    from alphaloop.policies.nets import PolicyValueNet

    net = PolicyValueNet.load(target.directory)
    return ServedGame(target.id, target.source, target.directory, _game_of(net, target.env, arg), net,
                      _created(target.directory))


def load_served(args: list[str]) -> tuple[dict[str, ServedLM], dict[str, ServedGame]]:
    """Every argument loaded, keyed by model id; UserError naming the argument for any that fails."""
    if not args:
        raise UserError("RUN_OR_CHECKPOINT: give at least one run, policy or checkpoint directory to serve")
    targets = [(arg, resolve(arg)) for arg in args]
    seen: dict[str, str] = {}
    for arg, target in targets:
        if target.id in seen:
            raise UserError(f"{seen[target.id]} and {arg} would both be model {target.id!r}: name one of them with "
                            f"NAME=PATH (e.g. {target.id}-2={arg})")
        seen[target.id] = arg
    lms: dict[str, ServedLM] = {}
    games: dict[str, ServedGame] = {}
    for arg, target in targets:
        if target.kind == "lm":
            lms[target.id] = load_lm(target)
        elif target.kind == "net":
            games[target.id] = load_game(target, arg)
        else:
            raise UserError(f"{arg}: its recipe's policy.kind is {target.kind!r}; expected 'lm' or 'net'")
    return lms, games
