"""Envs: where experience comes from, and what is true. See docs/custom-env.md to write one, and
docs/agents.md for a multi-turn (tool-using) one."""

from alphaloop.envs.agent import AgentConfig, AgentEnv, Mistake, ToolError, misspelt
from alphaloop.envs.base import SPLITS, EnvConfig, Problem, TextEnv, in_test_split, stable_unit
from alphaloop.envs.registry import describe_env, env_class, list_envs, make_env

__all__ = ["SPLITS", "AgentConfig", "AgentEnv", "EnvConfig", "Mistake", "Problem", "TextEnv", "ToolError",
           "describe_env", "env_class", "in_test_split", "list_envs", "make_env", "misspelt", "stable_unit"]
