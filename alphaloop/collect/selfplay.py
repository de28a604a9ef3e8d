"""Experience for game nets: AlphaZero self-play and AlphaGo-style expert games.

Self-play (Silver et al. 2017, "Mastering the game of Go without human knowledge", Methods): at every
move the search turns the net's priors into visit counts N(s, a); the move is drawn from

    pi(a | s) = N(s, a)^(1/tau) / sum_b N(s, b)^(1/tau)

with tau = 1 for the first `temperature_moves` moves (exploration, varied openings) and tau -> 0
(argmax) after. Each position is stored with the search's policy target and, once the game ends,
the outcome z in {-1, 0, +1} from the point of view of the player who moved there.

Games run in *lock-step*: all unfinished games hand their current state to one `search_many` call,
so each simulation step costs one batched net forward for every game instead of one per game -- on
a CPU the per-call overhead, not the arithmetic, is what a small net costs.

Scaling out: a round's games are split into chunks (`self_play_jobs`), one per worker, and each chunk
(`SelfPlayJob`) carries its own seed, from which `play_job` derives the search's and the move
sampler's generators. A chunk's games therefore come out the same whichever process plays them
(`alphaloop.scale`), and the round's records are the chunks' records in chunk order.

Imitation games (the AlphaGo recipe: supervised learning from an expert before reinforcement):
an expert plays both sides, with probability `epsilon` a uniformly random legal move is played
instead so the data covers positions the expert would never reach, and every position records the
expert's own move as a one-hot policy target and the final outcome as value target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alphaloop.games.registry import new_game, symmetries_fn
from alphaloop.games.replay import Examples
from alphaloop.scale.base import split_evenly
from alphaloop.search import MCTS, GumbelConfig, GumbelMCTS
from alphaloop.search.net_evaluator import SELFPLAY_CACHE, NetEvaluator
from alphaloop.seeding import child_seed


@dataclass
class GameRecord:
    """One finished game: every move played (`actions`), and per recorded position (every move, or
    with playout-cap randomisation the full searches only) the mover's observation, policy target,
    player and the search's root value for the mover (`root_values`, self-play only)."""

    game_name: str
    observations: list[np.ndarray] = field(default_factory=list)
    policies: list[np.ndarray] = field(default_factory=list)
    players: list[int] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    returns: tuple[float, float] = (0.0, 0.0)
    root_values: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.actions)

    def value_targets(self, q_weight: float = 0.0) -> np.ndarray:
        """z_t = outcome for the player who moved at t (+1 win, -1 loss, 0 draw), or with `q_weight`
        = w > 0 the mix (1 - w) z_t + w q_t with q_t the search's root value at t.

        The outcome is an unbiased but noisy target: one blunder late in a game (or a temperature-1
        move early on) flips z for every earlier position. The root value q is the search's own
        estimate, less noisy but biased by the net it came from. Averaging the two trades a little
        bias for much less variance (Willemsen, Baier & Kaisers 2021, "Value targets in off-policy
        AlphaZero: a new greedy backup", compare z, q and their average on connect four and find the
        mix learns fastest)."""
        if not 0.0 <= q_weight <= 1.0:
            raise ValueError(f"q_weight must be in [0, 1], got {q_weight}")
        z = np.array([self.returns[p] for p in self.players], dtype=np.float32)
        if q_weight == 0.0:
            return z
        if len(self.root_values) != len(self.players):
            raise ValueError(f"value_targets: q_weight > 0 needs one root value per position, got "
                             f"{len(self.root_values)} for {len(self.players)} (expert games have none)")
        return ((1.0 - q_weight) * z + q_weight * np.asarray(self.root_values, dtype=np.float32)).astype(np.float32)


def _check_count(name: str, value: int) -> None:
    if not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def select_action(visit_counts: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """Sample a ~ N^(1/tau) (tau > 0), or argmax N with random tie-breaking (tau == 0)."""
    counts = np.asarray(visit_counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError(f"visit_counts must have positive mass, got {counts.tolist()}")
    if temperature <= 0:
        best = np.flatnonzero(counts == counts.max())
        return int(best[0] if len(best) == 1 else rng.choice(best))
    weights = counts ** (1.0 / temperature)
    return int(rng.choice(len(counts), p=weights / weights.sum()))


def play_games(game_name: str, search, num_games: int, temperature_moves: int,
               rng: np.random.Generator, fast_simulations: int = 0, full_fraction: float = 1.0) -> list[GameRecord]:
    """Play `num_games` self-play games in lock-step with `search.search_many`.

    `search` is an MCTS-like object (`alphaloop.search.mcts.MCTS`) whose `search_many(states)` returns
    one `SearchResult` per state with `visit_counts` (float[A], what the move is drawn from),
    `policy_target` (float[A], what the net learns), `root_value` and `action` (a move the search
    chose itself, as Gumbel search does, or None). Each call gets only the unfinished games, so
    finished games cost nothing. Root exploration noise, if any, is the search config's business
    (Dirichlet 0.25).

    Playout-cap randomisation (Wu 2019, "Accelerating Self-Play Learning in Go", section 3.1) when
    `fast_simulations` > 0: at every move of every game, independently, with probability
    `full_fraction` the search is a full one (the config's simulations, root noise) and the position
    is recorded for training; otherwise a fast one (`fast_simulations`, no noise) that only moves the
    game on and is not recorded. Policy targets then all come from full searches, while games --
    and with them value targets -- come several times cheaper than at the full budget everywhere.
    """
    _check_count("num_games", num_games)
    _check_count("temperature_moves", temperature_moves)
    _check_count("fast_simulations", fast_simulations)
    if not 0.0 < full_fraction <= 1.0:
        raise ValueError(f"full_fraction must be in (0, 1], got {full_fraction}")
    states = [new_game(game_name) for _ in range(num_games)]
    records = [GameRecord(game_name) for _ in range(num_games)]
    active = [i for i, s in enumerate(states) if not s.is_terminal()]
    while active:
        if fast_simulations:
            full = (rng.random(len(active)) < full_fraction).tolist()
            sims = [search.config.num_simulations if f else fast_simulations for f in full]
            results = search.search_many([states[i] for i in active], simulations=sims, explore=full)
        else:
            full = [True] * len(active)
            results = search.search_many([states[i] for i in active])
        if len(results) != len(active):
            raise RuntimeError(f"search_many returned {len(results)} results for {len(active)} states")
        for i, result, recorded in zip(active, results, full):
            state, record = states[i], records[i]
            if recorded:
                record.observations.append(np.asarray(state.observation_tensor(), dtype=np.float32))
                record.policies.append(np.asarray(result.policy_target, dtype=np.float32))
                record.players.append(state.current_player())
                record.root_values.append(float(result.root_value))
            if result.action is not None:  # the search picked the move itself (Gumbel sequential halving)
                action = int(result.action)
            else:
                temperature = 1.0 if len(record) < temperature_moves else 0.0
                action = select_action(result.visit_counts, temperature, rng)
            record.actions.append(action)
            state.apply_action(action)
        active = [i for i in active if not states[i].is_terminal()]
    for state, record in zip(states, records):
        r = state.returns()
        record.returns = (float(r[0]), float(r[1]))
    return records


@dataclass(frozen=True)
class SelfPlayJob:
    """One worker's share of a round: `num_games` lock-step games of `game` with the search that
    `search` configures (an `MCTSConfig`, or a `GumbelConfig` for the Gumbel root), all randomness
    from `seed`. Small and picklable: it is what travels to a Ray actor."""

    game: str
    num_games: int
    search: Any
    temperature_moves: int
    seed: int
    fast_simulations: int = 0      # playout-cap randomisation (`play_games`); 0 = off
    full_fraction: float = 1.0


def self_play_jobs(game_name: str, num_games: int, parts: int, search: Any, temperature_moves: int,
                   seed: int, fast_simulations: int = 0, full_fraction: float = 1.0) -> list[SelfPlayJob]:
    """Split `num_games` into `parts` chunks of near-equal size (no empty chunk), chunk i seeded with
    child_seed(seed, i): the split depends only on (num_games, parts, seed), never on the backend."""
    _check_count("num_games", num_games)
    return [SelfPlayJob(game_name, size, search, temperature_moves, child_seed(seed, i), fast_simulations,
                        full_fraction)
            for i, size in enumerate(split_evenly(num_games, parts))]


def play_job(net, job: SelfPlayJob) -> list[GameRecord]:
    """Play one `SelfPlayJob` with `net` (the worker's copy of the policy-value net): the search gets
    seed child_seed(job.seed, 0), the temperature-1 move sampling child_seed(job.seed, 1)."""
    search_class = GumbelMCTS if isinstance(job.search, GumbelConfig) else MCTS
    search = search_class(NetEvaluator(net, cache_size=SELFPLAY_CACHE), job.search, seed=child_seed(job.seed, 0))
    rng = np.random.default_rng(child_seed(job.seed, 1))
    return play_games(job.game, search, job.num_games, job.temperature_moves, rng, job.fast_simulations,
                      job.full_fraction)


def to_examples(records: list[GameRecord], augment: bool = True, q_weight: float = 0.0) -> Examples:
    """Flatten games into (obs, policy target, value target) examples; value targets as
    `GameRecord.value_targets(q_weight)` (the outcome z, or its mix with the search's root value).

    With `augment`, every position also yields its images under the game's symmetries (8 for the
    square tic-tac-toe board, 2 for the left-right mirror of connect four) -- free data, and it
    teaches the net an invariance the rules guarantee (AlphaGo Zero augmented with the 8 dihedral maps).
    """
    if not records:
        raise ValueError("records must hold at least one GameRecord")
    if not any(record.observations for record in records):
        raise ValueError("records hold no recorded position")
    obs, pol, val = [], [], []
    for record in records:
        sym = symmetries_fn(record.game_name) if augment else None
        for o, p, z in zip(record.observations, record.policies, record.value_targets(q_weight)):
            pairs = sym(o, p) if sym is not None else [(o, p)]
            for o2, p2 in pairs:
                obs.append(o2)
                pol.append(p2)
                val.append(z)
    return Examples(np.stack(obs), np.stack(pol), np.asarray(val, dtype=np.float32))


def imitation_games(game_name: str, expert_player, num_games: int, rng: np.random.Generator,
                    epsilon: float = 0.1) -> list[GameRecord]:
    """Games where `expert_player` picks every recorded target; with probability `epsilon` the move
    actually played is a uniformly random legal one instead (the target stays the expert's move)."""
    _check_count("num_games", num_games)
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    records = []
    for _ in range(num_games):
        state = new_game(game_name)
        record = GameRecord(game_name)
        while not state.is_terminal():
            legal = state.legal_actions()
            expert_move = int(expert_player.choose(state))
            target = np.zeros(state.num_actions, dtype=np.float32)
            target[expert_move] = 1.0
            record.observations.append(np.asarray(state.observation_tensor(), dtype=np.float32))
            record.policies.append(target)
            record.players.append(state.current_player())
            action = int(rng.choice(legal)) if rng.random() < epsilon else expert_move
            record.actions.append(action)
            state.apply_action(action)
        r = state.returns()
        record.returns = (float(r[0]), float(r[1]))
        records.append(record)
    return records
