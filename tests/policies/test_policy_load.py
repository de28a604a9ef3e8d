"""Loading a saved policy checks the manifest written beside it, and a file that cannot be parsed is
a CorruptCheckpointError (a user error) naming the directory and the file, never a parser's traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from alphaloop.checkpoint import MANIFEST, MissingCheckpointError, write_atomic_dir
from alphaloop.errors import CorruptCheckpointError, UserError
from alphaloop.policies.arch import LMArch
from alphaloop.policies.lm import LMPolicy, build_tiny_hf_model
from alphaloop.policies.nets import CONFIG, WEIGHTS, NetConfig, PolicyValueNet

ALPHABET = "0123456789+= "


def flip_bit(path: Path, offset: int = -8) -> None:
    """Flip one bit of `path` in place (same size): only a checksum can tell."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x04
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


@pytest.fixture
def net_dir(tmp_path: Path) -> Path:
    """A net saved the way a stage saves its final policy: atomically, with a manifest."""
    torch.manual_seed(0)
    net = PolicyValueNet(NetConfig(channels=4, blocks=1, hidden=8), (3, 3, 3), 9)
    return write_atomic_dir(tmp_path / "policy", net.save)


def same_weights(a: PolicyValueNet, b: PolicyValueNet) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_intact_net_loads_and_plain_save_without_manifest_too(net_dir, tmp_path):
    net = PolicyValueNet.load(net_dir)
    assert not net.training and net.num_actions == 9
    plain = net.save(tmp_path / "plain")                 # no manifest: loads as before
    assert same_weights(PolicyValueNet.load(plain), net)


def test_bit_flip_in_net_weights_is_refused(net_dir):
    flip_bit(net_dir / WEIGHTS)
    with pytest.raises(CorruptCheckpointError, match=f"{net_dir}: file {WEIGHTS} fails its sha256 check"):
        PolicyValueNet.load(net_dir)
    (net_dir / MANIFEST).unlink()                        # what the manifest guards against: it loads silently
    assert PolicyValueNet.load(net_dir).num_actions == 9


@pytest.mark.parametrize("name", [WEIGHTS, CONFIG])
def test_truncated_or_missing_net_file_is_refused(net_dir, name):
    truncate(net_dir / name)
    with pytest.raises(CorruptCheckpointError, match=f"{net_dir}: file {name} has .* bytes, manifest says"):
        PolicyValueNet.load(net_dir)
    (net_dir / name).unlink()
    with pytest.raises(CorruptCheckpointError, match=f"file {name} is missing"):
        PolicyValueNet.load(net_dir)


@pytest.mark.parametrize(("name", "damage", "message"), [
    (WEIGHTS, lambda p: truncate(p), "cannot be read .*deserializing header"),
    (WEIGHTS, lambda p: p.write_bytes(b""), "cannot be read"),
    (CONFIG, lambda p: truncate(p), "cannot be read"),
    (CONFIG, lambda p: p.write_text('{"net": {"kind": "transformer"}}'), "cannot be read"),
    (CONFIG, lambda p: p.write_text("[1, 2]"), "cannot be read"),
    (CONFIG, lambda p: p.write_bytes(b"\xff\xfe"), "cannot be read"),
])
def test_unparsable_net_without_manifest_is_a_user_error(net_dir, name, damage, message):
    (net_dir / MANIFEST).unlink()
    damage(net_dir / name)
    with pytest.raises(CorruptCheckpointError, match=f"{net_dir}: file {name} {message}") as info:
        PolicyValueNet.load(net_dir)
    assert "\n" not in str(info.value)


def test_weights_that_do_not_fit_the_config_are_a_user_error(net_dir):
    (net_dir / MANIFEST).unlink()
    config = net_dir / CONFIG
    config.write_text(config.read_text().replace('"channels": 4', '"channels": 5'))
    with pytest.raises(CorruptCheckpointError, match=f"file {WEIGHTS} cannot be read .*do not fit the net {CONFIG}"):
        PolicyValueNet.load(net_dir)


def test_net_directory_without_its_files_is_a_user_error_and_a_file_not_found(tmp_path):
    for missing in (tmp_path / "nothing", tmp_path):
        with pytest.raises(MissingCheckpointError, match=CONFIG) as info:
            PolicyValueNet.load(missing)
        assert isinstance(info.value, UserError) and isinstance(info.value, FileNotFoundError)


def test_malformed_manifest_is_refused(net_dir):
    (net_dir / MANIFEST).write_text('{"files": {"model.safetensors": "abc"}}')
    with pytest.raises(CorruptCheckpointError, match=f"{MANIFEST} does not list files"):
        PolicyValueNet.load(net_dir)
    (net_dir / MANIFEST).write_text("[]")
    with pytest.raises(CorruptCheckpointError, match=f"{MANIFEST} does not list files"):
        PolicyValueNet.load(net_dir)


# -- LM policies ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lm_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny Llama policy with a value head saved with a manifest, and an HF GPT-2 directory without."""
    root = tmp_path_factory.mktemp("lm")
    policy = LMPolicy.build(LMArch(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2,
                                   intermediate_size=32), ALPHABET, seed=0)
    policy.add_value_head()
    saved = write_atomic_dir(root / "policy", policy.save)
    return saved, build_tiny_hf_model(root / "gpt2", alphabet=ALPHABET)


@pytest.fixture
def lm_dir(lm_dirs, tmp_path) -> Path:
    return Path(shutil.copytree(lm_dirs[0], tmp_path / "policy"))


def test_intact_lm_policy_and_pretrained_directory_load(lm_dirs):
    saved, pretrained = lm_dirs
    policy = LMPolicy.load(saved)
    assert policy.value_head is not None and policy.encode("1+2") == policy.encode("1+2")
    assert not (pretrained / MANIFEST).exists()
    assert LMPolicy.load(pretrained).hidden_size == 32


@pytest.mark.parametrize("name", ["model.safetensors", "value_head.safetensors", "tokenizer.json"])
def test_bit_flip_or_truncation_in_lm_policy_is_refused(lm_dir, name):
    flip_bit(lm_dir / name, offset=-3)
    with pytest.raises(CorruptCheckpointError, match=f"{lm_dir}: file {name} fails its sha256 check"):
        LMPolicy.load(lm_dir)
    truncate(lm_dir / name)
    with pytest.raises(CorruptCheckpointError, match=f"{lm_dir}: file {name} has .* bytes"):
        LMPolicy.load(lm_dir)


@pytest.mark.parametrize("name", ["model.safetensors", "value_head.safetensors", "tokenizer.json", "config.json",
                                  "tokenizer_config.json"])
def test_unparsable_lm_policy_without_manifest_names_the_file(lm_dir, name):
    (lm_dir / MANIFEST).unlink()
    truncate(lm_dir / name)
    with pytest.raises(CorruptCheckpointError, match=f"{lm_dir}: file {name} cannot be read") as info:
        LMPolicy.load(lm_dir)
    assert "\n" not in str(info.value)


def test_unparsable_pretrained_directory_is_a_user_error(lm_dirs, tmp_path):
    gpt2 = Path(shutil.copytree(lm_dirs[1], tmp_path / "gpt2"))
    truncate(gpt2 / "model.safetensors", keep=0.1)
    with pytest.raises(CorruptCheckpointError, match="file model.safetensors cannot be read"):
        LMPolicy.load(gpt2)


def test_missing_lm_policy_is_a_user_error_and_a_file_not_found(tmp_path):
    with pytest.raises(MissingCheckpointError, match="config.json") as info:
        LMPolicy.load(tmp_path / "nothing")
    assert isinstance(info.value, FileNotFoundError)
