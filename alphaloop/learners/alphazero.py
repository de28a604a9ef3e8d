"""The AlphaZero update, and matches to measure what it learned.

Loss (Silver et al. 2017, "Mastering the game of Go without human knowledge", eq. 1):

    l = (z - v)^2  -  pi^T log p  +  c ||theta||^2

with (p, v) = f_theta(s), pi the search's policy target and z the game outcome for the player to move.
The value term is a mean squared error, the policy term the cross-entropy from the search's improved
policy to the net's; both are averaged over the batch. The L2 term is left to the optimizer's
`weight_decay` (SGD's weight decay is exactly the gradient of c ||theta||^2 with c = wd / 2), so the
loss here is only what the data says.

Learning distils search into the net: the net's priors guide the next search, the search's visit
counts are sharper than the priors, and training on them moves the priors there.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from alphaloop.games.registry import new_game
from alphaloop.games.replay import ReplayBuffer
from alphaloop.policies.nets import PolicyValueNet
from alphaloop.search.mcts import MCTS, MCTSConfig, most_visited, play_config
from alphaloop.search.net_evaluator import NetEvaluator, greedy_moves

Precision = Literal["float32", "bfloat16"]   # of `train_steps` (stages' `train_precision`)


def alphazero_loss(net: PolicyValueNet, obs: torch.Tensor, target_policy: torch.Tensor,
                   target_value: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """mean_b[(z_b - v_b)^2] + mean_b[-sum_a pi_ba log p_ba]; returns (loss, stats).

    Targets of zero probability contribute nothing to the cross-entropy, so the unmasked log-softmax
    over all actions is exact even though illegal moves have pi = 0.
    """
    if target_policy.shape != (obs.shape[0], net.num_actions):
        raise ValueError(f"target_policy must have shape [{obs.shape[0]}, {net.num_actions}], "
                         f"got {list(target_policy.shape)}")
    if target_value.shape != (obs.shape[0],):
        raise ValueError(f"target_value must have shape [{obs.shape[0]}], got {list(target_value.shape)}")
    logits, value = net(obs)
    logits, value = logits.float(), value.float()          # (no-ops in fp32; the loss in fp32 under autocast)
    log_p = F.log_softmax(logits, dim=-1)
    policy_loss = -(target_policy * log_p).sum(-1).mean()
    value_loss = (target_value - value).pow(2).mean()
    loss = policy_loss + value_loss
    # Entropy of the targets: the floor the policy loss can reach (policy_loss - entropy = KL(pi || p)).
    target_entropy = -(target_policy * torch.log(target_policy.clamp_min(1e-12))).sum(-1).mean()
    stats = {"loss": float(loss.detach()), "policy_loss": float(policy_loss.detach()),
             "value_loss": float(value_loss.detach()),
             "policy_kl": float((policy_loss - target_entropy).detach())}
    return loss, stats


def train_steps(net: PolicyValueNet, optimizer: torch.optim.Optimizer, buffer: ReplayBuffer, steps: int,
                batch_size: int, rng: np.random.Generator, precision: Precision = "float32") -> dict[str, float]:
    """`steps` gradient steps on batches drawn uniformly from `buffer`; returns the mean stats.

    `precision="bfloat16"` is mixed-precision training (Micikevicius et al. 2018, with bfloat16's
    fp32 exponent range so no loss scaling is needed): convolutions and linear layers run in bfloat16
    under `torch.autocast`, the weights, the optimizer's state, batch norm and the loss stay fp32; a
    resnet then also trains in channels-last layout. Measured on a 2-core Intel Xeon with AMX, ResNet
    64x3, batch 128, 2 threads: 43.8 -> 23.3 ms a step (`benchmarks/net_inference.py`).

    The net is left in eval mode, which is how search uses it (batch-norm running statistics).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if precision not in get_args(Precision):
        raise ValueError(f"precision must be one of {get_args(Precision)}, got {precision!r}")
    totals: dict[str, float] = {}
    net.train()
    device = next(net.parameters()).device
    mixed = precision == "bfloat16"
    channels_last = mixed and net.config.kind == "resnet"
    if channels_last:
        net.to(memory_format=torch.channels_last)
    for _ in range(steps):
        batch = buffer.sample(batch_size, rng)
        obs = torch.from_numpy(batch.obs).to(device)
        if channels_last:
            obs = obs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed):
            loss, stats = alphazero_loss(net, obs, torch.from_numpy(batch.policy).to(device),
                                         torch.from_numpy(batch.value).to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for key, value in stats.items():
            totals[key] = totals.get(key, 0.0) + value
    net.eval()
    return {key: value / steps for key, value in totals.items()} | {"steps": float(steps)}


class NetPlayer:
    """A player backed by a policy-value net: `sims == 0` plays the raw policy's argmax over legal
    moves (no search at all); `sims > 0` runs that many PUCT simulations (no root noise) and plays the
    most visited move, ties broken by `seed`, with `play_config` (one leaf per tree per net call)
unless `search_config` overrides the MCTS settings.

    `choose_many(states)` moves in many games at once: one batched forward pass (raw) or one lock-step
    search over all the games' trees (`MCTS.search_many`, which reuses each game's subtree found by
    move history), so a match of G games costs about one search per ply instead of G."""

    def __init__(self, net: PolicyValueNet, sims: int = 0, seed: int = 0,
                 search_config: MCTSConfig | None = None) -> None:
        if sims < 0:
            raise ValueError(f"sims must be >= 0, got {sims}")
        self.net = net
        self.sims = int(sims)
        self.evaluator = NetEvaluator(net)
        self.search: MCTS | None = None
        if self.sims > 0:
            config = (search_config.model_copy(update={"num_simulations": self.sims}) if search_config
                      else play_config(self.sims))
            self.search = MCTS(self.evaluator, config, seed=seed)

    def choose(self, state) -> int:
        return self.choose_many([state])[0]

    def choose_many(self, states: list) -> list[int]:
        """One move per (non-terminal) state, as `choose` would pick it."""
        if self.search is None:
            return greedy_moves(self.evaluator, states, self.net.num_actions)
        return most_visited(self.search.search_many(states), self.search.rng)


class SearchPlayer:
    """A search without a net as a player (e.g. plain UCT with random roll-outs): the most visited
    move; `choose_many` searches all the states' trees in one `search_many` call, so a match keeps
    each game's tree for reuse at its next move (one game at a time would keep it too)."""

    def __init__(self, search: MCTS) -> None:
        self.search = search

    def choose(self, state) -> int:
        return self.choose_many([state])[0]

    def choose_many(self, states: list) -> list[int]:
        return most_visited(self.search.search_many(states), self.search.rng)


def _moves(player, states: list) -> list[int]:
    """`player`'s moves in `states`: batched through `choose_many` when it has one, else one by one."""
    if hasattr(player, "choose_many"):
        return [int(a) for a in player.choose_many(states)]
    return [int(player.choose(s.clone())) for s in states]


def play_match(player_a, player_b, game_name: str, num_games: int, seed: int = 0,
               random_opening: int = 0) -> tuple[int, int, int]:
    """(wins, draws, losses) of `player_a` against `player_b` over `num_games`; A moves first in even
    games and second in odd ones, so neither side keeps the first-move advantage.

    Players expose `choose(state) -> action` (`alphaloop.games.players.Player`) and optionally
    `choose_many(states) -> actions`. Deterministic players would replay the same two games forever,
    so `random_opening` plies at the start of every game are uniformly random legal moves drawn from
    `seed` (game g uses seed + g): a reproducible spread of openings.

    All games are played at once: A moves in every game where it is to move, then B in every game
    where it is to move, and so on. After the first turn every game has the same player to move, so
    each call of a player sees all unfinished games, and a searching player finds each game's tree
    from its previous move (tree reuse is by move history) exactly as in one game at a time (tested).
    One difference: a game whose moves so far are another game's plus one or two more may continue
    that game's tree (the same position reached by the same moves; like alpha-beta's transposition
    table, which also persists across the games of a match). Matches of deterministic players with
    the same opening replay the same game either way.
    """
    if num_games < 0:
        raise ValueError(f"num_games must be >= 0, got {num_games}")
    if random_opening < 0:
        raise ValueError(f"random_opening must be >= 0, got {random_opening}")
    states = []
    for game in range(num_games):
        rng = np.random.default_rng(seed + game)
        state = new_game(game_name)
        while not state.is_terminal() and len(state.move_history()) < random_opening:
            state.apply_action(int(rng.choice(state.legal_actions())))
        states.append(state)
    a_seats = [game % 2 for game in range(num_games)]
    active = [g for g in range(num_games) if not states[g].is_terminal()]
    while active:
        for player, is_a in ((player_a, True), (player_b, False)):
            turn = [g for g in active if (states[g].current_player() == a_seats[g]) == is_a]
            if turn:
                for g, action in zip(turn, _moves(player, [states[g] for g in turn])):
                    states[g].apply_action(action)
            active = [g for g in active if not states[g].is_terminal()]
    wins = draws = losses = 0
    for state, a_seat in zip(states, a_seats):
        outcome = state.returns()[a_seat]
        wins += outcome > 0
        draws += outcome == 0
        losses += outcome < 0
    return wins, draws, losses
