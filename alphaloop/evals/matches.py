"""How a game net is measured by play: matches against reference opponents (win rates with Wilson
intervals, the tallies Elo is fitted on) and, for tic-tac-toe, the exhaustive perfect-lines check."""

from __future__ import annotations

from typing import Any

from alphaloop.errors import UserError
from alphaloop.evals.metrics import wilson_interval
from alphaloop.evals.opponents import default_opponents, make_opponent
from alphaloop.games.match import play_match
from alphaloop.games.players import PerfectTicTacToe
from alphaloop.games.registry import new_game
from alphaloop.search.players import NetPlayer

Tally = tuple[str, str, int, int, int]  # (player, opponent, wins, draws, losses)


def evaluate_net(policy: str, net, game: str, opponents: list[str] | None, depth: int, games: int,
                 sims: list[int], seed: int, opening: int = 0) -> tuple[list[dict[str, Any]], list[Tally]]:
    """Matches of `net` (raw for sims 0, else MCTS@sims) against each opponent, half the games as
    each colour (`play_match` alternates). Returns the eval records and the (player, opponent, wins,
    draws, losses) tallies that Elo is fitted on. `win_low` / `win_high` bound the win rate with the
    Wilson 95% score interval (games counted as independent: with a few random opening plies some
    games between near-deterministic players repeat, so the real uncertainty is somewhat larger)."""
    records, tallies = [], []
    for opponent_name in opponents or default_opponents(game, depth):
        for n_sims in sims:
            decoder = "raw" if n_sims == 0 else f"mcts@{n_sims}"
            try:
                opponent = make_opponent(opponent_name, game, seed)
            except ValueError as exc:
                raise UserError(f"opponents: {exc}") from None
            w, d, l = play_match(NetPlayer(net, sims=n_sims, seed=seed), opponent, game, games, seed=seed,
                                 random_opening=opening)
            n = w + d + l
            low, high = wilson_interval(w, n)
            metrics = {"win_rate": round(w / n, 6), "draw_rate": round(d / n, 6),
                       "loss_rate": round(l / n, 6), "score": round((w + 0.5 * d) / n, 6), "n": n,
                       "win_low": round(low, 6), "win_high": round(high, 6)}
            records.append({"policy": policy, "split": f"vs-{opponent_name}", "decoder": decoder,
                            "metrics": metrics})
            tallies.append((f"{policy}:{decoder}", opponent_name, w, d, l))
    return records, tallies


def match_results(tallies: list[Tally]) -> list[tuple[str, str, float]]:
    """One (a, b, score of a) per game, as `elo_from_results` wants: win 1, draw 0.5, loss 0."""
    out = []
    for a, b, w, d, l in tallies:
        out += [(a, b, 1.0)] * w + [(a, b, 0.5)] * d + [(a, b, 0.0)] * l
    return out


def perfect_lines(net) -> dict[str, int]:
    """Lines of tic-tac-toe where the raw net (argmax over legal moves) plays one side and the
    opponent may play ANY value-preserving move (every move whose minimax value equals the best):
    the net "never loses to perfect play" iff no such line ends in its loss. Counts terminal lines
    and lost ones, with the net as X (first) and as O (second)."""
    perfect, player = PerfectTicTacToe(), NetPlayer(net, sims=0)
    choice: dict = {}

    def walk(state, seat: int) -> tuple[int, int]:
        if state.is_terminal():
            return 1, int(state.returns()[seat] < 0)
        if state.current_player() == seat:
            key = state.key()
            if key not in choice:
                choice[key] = player.choose(state)
            moves = [choice[key]]
        else:
            values = perfect.move_values(state)
            best = max(v for v in values if v is not None)
            moves = [a for a, v in enumerate(values) if v == best]
        lines = lost = 0
        for a in moves:
            child = state.clone()
            child.apply_action(a)
            n, k = walk(child, seat)
            lines, lost = lines + n, lost + k
        return lines, lost

    first, second = walk(new_game("tictactoe"), 0), walk(new_game("tictactoe"), 1)
    return {"lost_lines_as_first": first[1], "lost_lines_as_second": second[1], "lines": first[0] + second[0]}


def lost_lines_record(policy: str, net) -> dict[str, Any]:
    return {"policy": policy, "split": "perfect-lines", "decoder": "raw", "metrics": perfect_lines(net)}
