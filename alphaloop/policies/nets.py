"""Policy-value networks for board games: one trunk, two heads (AlphaZero, Silver et al. 2017/2018).

    f_theta(s) = (p, v):  p = softmax(policy_logits(s)) over all actions,  v = tanh(value(s)) in [-1, 1]

`v` is the expected outcome for the player to move, because every game's `observation_tensor()` is
drawn from the mover's point of view; one net therefore plays both colours.

Two trunks, picked by `NetConfig.kind`:
  * "resnet": the AlphaGo Zero shape at toy scale -- a 3x3 conv stem, `blocks` residual blocks
    (conv-BN-ReLU-conv-BN + skip, ReLU) of `channels` filters, then a 1x1-conv policy head and a
    1x1-conv -> hidden -> tanh value head.
  * "mlp": flatten -> `blocks` hidden layers of width `hidden` -> the two heads; it is faster on a CPU
    for 3x3 boards and is the baseline the conv net should beat on connect four. With
    `policy_hidden = hidden` it is exactly OpenSpiel's AlphaZero "mlp" model (torso of `blocks` dense+ReLU
    layers; policy head dense+ReLU -> dense; value head dense+ReLU -> dense -> tanh), the net of the
    side-by-side speed comparison in `benchmarks/selfplay.py`.

Search calls `infer`, not `forward`: the same function in eval mode, with every batch norm folded into
the convolution before it (see `_fold`), which removes a full pass over the activations per layer, and
on a CPU large batches run in chunks of `CPU_CHUNK` positions so that the conv activations stay in the
core's L2 cache, in channels-last layout (oneDNN's native one for convolutions). Search only needs
priors and values, not fp32 exactness, so on a CPU with native bfloat16 arithmetic (Intel AMX or
AVX512-BF16) `infer` runs in bfloat16 by default (`NetConfig.inference = "auto"`), as AlphaZero's
TPUs ran self-play inference in reduced precision; training (`forward`) always stays fp32. Measured on
a 2-core Intel Xeon (Sapphire Rapids) at 2 threads, ResNet 64x3 on connect four, 1,024 positions:
plain eval-mode `forward` 8.6k positions/s, `infer` in fp32 14.9k, in bfloat16 54.3k (at 64
positions: 9.1k / 10.3k / 25.3k); bfloat16 logits differ from fp32 ones by at most 1.6e-3
(`benchmarks/net_inference.py`).

Saved as `model.safetensors` plus `net_config.json` (the config, observation shape and action count)
so a net is rebuilt from its directory alone, without pickle.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from alphaloop import checkpoint as ckpt

WEIGHTS = "model.safetensors"
CONFIG = "net_config.json"
CPU_CHUNK = 256   # positions per conv pass in `infer` on a CPU (activations: 256 x 64 x 42 bf16 = 1.4 MB)


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA, or its older name DNNL_MAX_CPU_ISA) under which bfloat16
# products still run in hardware; any other cap (AVX2, AVX512_CORE, ...) makes oneDNN emulate them.
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
              "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2",
              "ALL", "DEFAULT")


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """True if this CPU multiplies bfloat16 in hardware (AMX tiles or AVX512-BF16) and oneDNN may
    use those instructions; elsewhere bfloat16 convolutions are emulated and slower than fp32. A
    user who caps oneDNN below them (`ONEDNN_MAX_CPU_ISA=AVX2`, the standard way to make a modern
    CPU behave like an older one) gets float32, as on that older CPU."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").strip().upper()
    if cap not in _BF16_ISAS:
        return False
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(bool(getattr(torch.cpu, name)()) for name in probes if hasattr(torch.cpu, name))
    except RuntimeError:
        return False


def training_precision(choice: str, device: torch.device) -> Literal["float32", "bfloat16"]:
    """What a stage's `train_precision` means on `device`: 'auto' is bfloat16 mixed precision where
    bfloat16 is native (a GPU, or a CPU with AMX / AVX512-BF16) and float32 elsewhere, where emulated
    bfloat16 is slower than float32 (measured ~10x a step on an AVX2-only CPU)."""
    if choice != "auto":
        return choice  # type: ignore[return-value]
    native = device.type == "cuda" or (device.type == "cpu" and native_bf16())
    return "bfloat16" if native else "float32"


class NetConfig(BaseModel):
    """Size of a policy-value net. Defaults are small enough for CPU self-play on connect four."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["resnet", "mlp"] = "resnet"
    channels: int = Field(32, ge=1, description="conv filters per layer (resnet)")
    blocks: int = Field(2, ge=0, description="residual blocks (resnet) or hidden layers (mlp)")
    hidden: int = Field(64, ge=1, description="width of the value head's hidden layer and of mlp layers")
    policy_channels: int = Field(2, ge=1, description="1x1 conv filters in the policy head (AlphaGo Zero: 2)")
    policy_hidden: int = Field(0, ge=0, description="mlp only: hidden layer of the policy head, 0 = none "
                                                    "(OpenSpiel's mlp has one of the torso's width)")
    inference: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="precision of `infer` (search's forward) for resnets: 'auto' = bfloat16 on a "
                            "CPU with native bfloat16 (AMX / AVX512-BF16), float32 elsewhere")


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class PolicyValueNet(nn.Module):
    """`forward(obs[B, *observation_shape]) -> (logits[B, num_actions], value[B])`, value in [-1, 1]."""

    def __init__(self, config: NetConfig, observation_shape: tuple[int, ...], num_actions: int) -> None:
        super().__init__()
        observation_shape = tuple(int(d) for d in observation_shape)
        if num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {num_actions}")
        if config.kind == "resnet" and len(observation_shape) != 3:
            raise ValueError(f"observation_shape must be (planes, height, width) for kind='resnet', "
                             f"got {observation_shape}; use NetConfig(kind='mlp') for flat observations")
        self.config = config
        self.observation_shape = observation_shape
        self.num_actions = int(num_actions)
        if config.kind == "resnet":
            planes, height, width = observation_shape
            c = config.channels
            self.trunk = nn.Sequential(
                nn.Conv2d(planes, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                *[_ResBlock(c) for _ in range(config.blocks)],
            )
            area = height * width
            self.policy_head = nn.Sequential(
                nn.Conv2d(c, config.policy_channels, 1, bias=False), nn.BatchNorm2d(config.policy_channels),
                nn.ReLU(), nn.Flatten(), nn.Linear(config.policy_channels * area, num_actions),
            )
            self.value_head = nn.Sequential(
                nn.Conv2d(c, 1, 1, bias=False), nn.BatchNorm2d(1), nn.ReLU(), nn.Flatten(),
                nn.Linear(area, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1),
            )
        else:
            size = 1
            for d in observation_shape:
                size *= d
            layers: list[nn.Module] = [nn.Flatten()]
            width_in = size
            for _ in range(config.blocks):
                layers += [nn.Linear(width_in, config.hidden), nn.ReLU()]
                width_in = config.hidden
            self.trunk = nn.Sequential(*layers)
            if config.policy_hidden:
                self.policy_head = nn.Sequential(nn.Linear(width_in, config.policy_hidden), nn.ReLU(),
                                                 nn.Linear(config.policy_hidden, num_actions))
            else:
                self.policy_head = nn.Linear(width_in, num_actions)
            self.value_head = nn.Sequential(nn.Linear(width_in, config.hidden), nn.ReLU(),
                                            nn.Linear(config.hidden, 1))
            # `infer`'s chain of products (a plain tuple: not registered again as submodules)
            heads = (self.policy_head,) if isinstance(self.policy_head, nn.Linear) else tuple(self.policy_head[::2])
            self._mlp_chain = (tuple(self.trunk[1::2]), heads, tuple(self.value_head[::2]))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tuple(obs.shape[1:]) != self.observation_shape:
            raise ValueError(f"obs must have shape [B, {', '.join(map(str, self.observation_shape))}], "
                             f"got {list(obs.shape)}")
        h = self.trunk(obs)
        return self.policy_head(h), torch.tanh(self.value_head(h)).squeeze(-1)

    @torch.inference_mode()
    def infer(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` as in eval mode (batch-norm running statistics, whatever `self.training` is), for
        search: no autograd, and each conv + batch norm runs as one convolution with folded weights."""
        if self.config.kind != "resnet":
            return self._mlp_direct(obs)
        if tuple(obs.shape[1:]) != self.observation_shape:
            raise ValueError(f"obs must have shape [B, {', '.join(map(str, self.observation_shape))}], "
                             f"got {list(obs.shape)}")
        dtype = self.inference_dtype(obs.device)
        weights = self._inference_weights(dtype, obs.device.type == "cpu")
        x = obs.to(dtype)
        if obs.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        chunks = x.split(CPU_CHUNK) if obs.device.type == "cpu" else (x,)
        parts = [self._resnet_folded(chunk, *weights) for chunk in chunks]
        logits = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        values = torch.cat([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        return logits.float(), values.float()

    def _mlp_direct(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The MLP's `forward` as a chain of `F.linear` calls on its weights: one game's search asks
        for a handful of positions at a time, where module dispatch (hooks, `Sequential`) costs as
        much as the products."""
        if tuple(obs.shape[1:]) != self.observation_shape:
            raise ValueError(f"obs must have shape [B, {', '.join(map(str, self.observation_shape))}], "
                             f"got {list(obs.shape)}")
        trunk, policy, value_layers = self._mlp_chain
        h = obs.flatten(1)
        for layer in trunk:
            h = F.linear(h, layer.weight, layer.bias).relu_()
        logits = h
        for k, layer in enumerate(policy):
            logits = F.linear(logits if k == 0 else logits.relu_(), layer.weight, layer.bias)
        hidden = F.linear(h, value_layers[0].weight, value_layers[0].bias).relu_()
        value = torch.tanh(F.linear(hidden, value_layers[1].weight, value_layers[1].bias))
        return logits, value.squeeze(-1)

    def inference_dtype(self, device: torch.device) -> torch.dtype:
        """The dtype `infer` runs in on `device` (see `NetConfig.inference`)."""
        choice = self.config.inference
        if choice == "auto":
            return torch.bfloat16 if device.type == "cpu" and native_bf16() else torch.float32
        return torch.bfloat16 if choice == "bfloat16" else torch.float32

    def _inference_weights(self, dtype: torch.dtype, channels_last: bool) -> tuple[list, list]:
        """(convs, linears): (weight, bias) of each conv with its batch norm folded in (`_fold`) --
        stem, two per residual block, policy head, value head -- and of the heads' linear layers
        (policy, value hidden, value out), cast to `dtype`. Rebuilt on every call (a handful of tiny
        ops), so they always match the current weights."""
        pairs = [(self.trunk[0], self.trunk[1])]
        for block in self.trunk[3:]:
            pairs += [(block.conv1, block.bn1), (block.conv2, block.bn2)]
        pairs += [(self.policy_head[0], self.policy_head[1]), (self.value_head[0], self.value_head[1])]
        layout = torch.channels_last if channels_last else torch.contiguous_format
        convs = [(w.to(dtype).contiguous(memory_format=layout), b.to(dtype))
                 for w, b in (_fold(conv, bn) for conv, bn in pairs)]
        linears = [(layer.weight.to(dtype), layer.bias.to(dtype))
                   for layer in (self.policy_head[4], self.value_head[4], self.value_head[6])]
        return convs, linears

    @staticmethod
    def _resnet_folded(obs: torch.Tensor, convs: list, linears: list) -> tuple[torch.Tensor, torch.Tensor]:
        """The resnet's eval-mode forward from `_inference_weights`."""
        h = F.conv2d(obs, *convs[0], padding=1).relu_()          # (in place: no extra activation pass)
        for k in range(1, len(convs) - 2, 2):
            y = F.conv2d(h, *convs[k], padding=1).relu_()
            h = F.conv2d(y, *convs[k + 1], padding=1).add_(h).relu_()
        logits = F.linear(F.conv2d(h, *convs[-2]).relu_().flatten(1), *linears[0])
        v = F.conv2d(h, *convs[-1]).relu_().flatten(1)
        value = torch.tanh(F.linear(F.linear(v, *linears[1]).relu_(), *linears[2])).squeeze(-1)
        return logits, value

    def save(self, directory: str | Path) -> Path:
        """Write `model.safetensors` and `net_config.json` into `directory` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(directory / WEIGHTS))
        meta = {"net": self.config.model_dump(), "observation_shape": list(self.observation_shape),
                "num_actions": self.num_actions}
        (directory / CONFIG).write_text(json.dumps(meta, indent=1, sort_keys=True))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> PolicyValueNet:
        """Rebuild a net saved by `save`; the net is returned in eval mode.

        A directory written atomically (a stage's final policy, a snapshot) is first checked against
        its MANIFEST.json, so flipped bits or a cut-off file are refused instead of played. Any file
        that is missing or cannot be parsed raises CorruptCheckpointError naming the directory and the
        file -- a user error the CLI reports in one line -- never a parser's traceback."""
        directory = Path(directory)
        ckpt.verify_if_manifest(directory)
        for name in (CONFIG, WEIGHTS):
            if not (directory / name).is_file():
                raise ckpt.MissingCheckpointError(
                    f"{directory}: no {name}; a net directory holds {CONFIG} and {WEIGHTS} (written by "
                    f"PolicyValueNet.save)")
        try:
            meta = json.loads((directory / CONFIG).read_text())
            net = cls(NetConfig(**meta["net"]), tuple(meta["observation_shape"]), meta["num_actions"])
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ckpt.unreadable(directory, CONFIG, exc) from exc
        try:
            state = load_file(str(directory / WEIGHTS))
        except (OSError, SafetensorError) as exc:
            raise ckpt.unreadable(directory, WEIGHTS, exc) from exc
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ckpt.unreadable(directory, WEIGHTS, f"its tensors do not fit the net {CONFIG} describes: "
                                                      f"{exc}") from exc
        return net.eval()


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of one convolution equal to `bn(conv(x))` in eval mode (Ioffe & Szegedy 2015's
    transform is affine per channel k, so it folds into the conv's k-th filter):

        bn(conv(x))_k = gamma_k (conv(x)_k - mu_k) / sqrt(var_k + eps) + beta_k
                      = conv_{W_k s_k}(x) + (beta_k - mu_k s_k),      s_k = gamma_k / sqrt(var_k + eps).
    """
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return conv.weight * scale[:, None, None, None], bias


def build_net(config: NetConfig | dict | None, game_state) -> PolicyValueNet:
    """A fresh net sized for `game_state`'s class (its `observation_shape` and `num_actions`)."""
    if config is None:
        config = NetConfig()
    elif isinstance(config, dict):
        config = NetConfig(**config)
    return PolicyValueNet(config, tuple(game_state.observation_shape), game_state.num_actions)


def load(directory: str | Path) -> PolicyValueNet:
    return PolicyValueNet.load(directory)
