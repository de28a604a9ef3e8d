"""What the agent diagnosis scripts (`agent_actions.py`, `agent_templates.py`) share: a saved policy, an
agent env with knobs, a split and a task count on the command line, loaded the same way."""

from __future__ import annotations

import argparse

import torch

from alphaloop.envs import make_env
from alphaloop.policies.lm import LMPolicy
from alphaloop.recipe import parse_value


def agent_parser(description: str, env: str, split: str, tasks: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("policy", help="a saved policy directory")
    parser.add_argument("--env", default=env, help="an agent env (shell, invoices, ...)")
    parser.add_argument("--knobs", nargs="*", default=[], help="env knobs as name=value (e.g. memory=2)")
    parser.add_argument("--split", default=split)
    parser.add_argument("--tasks", type=int, default=tasks)
    return parser


def load(args: argparse.Namespace, **overrides) -> tuple:
    """The env (its knobs from --knobs, then `overrides`) and the policy, on one thread."""
    torch.set_num_threads(1)
    knobs = {k: parse_value(v) for k, _, v in (item.partition("=") for item in args.knobs)}
    return make_env(args.env, split=args.split, **(knobs | overrides)), LMPolicy.load(args.policy)
