"""Resolving env specs: built-in name, entry point, 'module:Class' and 'file.py:Class'."""

import shutil
from pathlib import Path

import pytest

from alphaloop.envs import describe_env, env_class, list_envs, make_env
from alphaloop.envs.arithmetic import ArithmeticEnv

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "reverse_env.py"


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """An installed-looking distribution on sys.path that declares `alphaloop.envs` entry points."""
    shutil.copy(EXAMPLE, tmp_path / "reverse_plugin.py")
    (tmp_path / "broken_plugin.py").write_text("raise ImportError('plugin dependency missing')\n")
    info = tmp_path / "reverse_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: reverse-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[alphaloop.envs]\nreverse = reverse_plugin:ReverseEnv\nbroken = broken_plugin:Env\n"
        "arithmetic = reverse_plugin:ReverseEnv\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtin_name():
    env = make_env("arithmetic", split="test", seed=1, digits_max=2)
    assert isinstance(env, ArithmeticEnv) and env.split == "test" and env.config.digits_max == 2


def test_module_colon_class():
    assert env_class("alphaloop.envs.arithmetic:ArithmeticEnv") is ArithmeticEnv


def test_file_colon_class_relative_to_working_directory(monkeypatch):
    monkeypatch.chdir(ROOT)
    env = make_env("docs/examples/reverse_env.py:ReverseEnv", split="heldout", heldout_length=7)
    prompt, _ = env.reset(seed=0)
    assert len(prompt) == 8 and prompt.endswith("=")
    assert env_class(f"{EXAMPLE}:ReverseEnv") is type(env)  # one module per file, loaded once


def test_entry_point(plugin_dir):
    env = make_env("reverse", split="test", seed=0)
    assert type(env).__name__ == "ReverseEnv" and env.split == "test"
    envs = list_envs()
    assert envs["arithmetic"] is ArithmeticEnv  # a plugin cannot replace a built-in
    assert "reverse" in envs and "broken" not in envs  # a plugin that fails to import is skipped
    with pytest.raises(ImportError, match=r"env 'broken': its entry point 'broken_plugin:Env' failed"):
        env_class("broken")


@pytest.mark.parametrize("spec,error,needle", [
    ("arithmatic", ValueError, "unknown env 'arithmatic': available envs are arithmetic"),
    ("", ValueError, "non-empty string"),
    ("no_such_module:Env", ImportError, "cannot import module 'no_such_module'"),
    ("alphaloop.envs.arithmetic:Nope", ValueError, "'Nope' (TextEnv classes there: ArithmeticEnv)"),
    ("alphaloop.envs.base:Problem", TypeError, "not a subclass of alphaloop.envs.TextEnv"),
    ("missing/env.py:Env", ValueError, "file not found"),
    ("alphaloop.envs.arithmetic:", ValueError, "expected 'package.module:Class'"),
])
def test_bad_specs_are_clear(spec, error, needle):
    with pytest.raises(error) as caught:
        env_class(spec)
    assert needle in str(caught.value)


def test_describe_env_lists_every_knob_with_type_default_and_description():
    rows = {knob: (kind, default, text) for knob, kind, default, text in describe_env(ArithmeticEnv)}
    assert rows["digits_max"] == ("int", 3, "most digits of an operand (train/test)")
    assert rows["ops"][:2] == ("str", "+") and rows["misconception_rate"][:2] == ("float", 0.7)
    assert set(rows) >= {"digits_min", "heldout_digits_min", "heldout_digits_max", "slip_rate",
                         "test_fraction"}
    assert all(text for _, _, text in rows.values())
