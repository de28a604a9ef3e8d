"""The game agents' endpoints: GET /v1/games lists them, POST /v1/games/{game}/move asks one for a move.

A position is written as position files and `alphaloop move` write it: the moves played from the
start, one 1-based digit each (a column 1-7 in connect four, a cell 1-9 in tic-tac-toe, row by row
from the top left); "" is the initial position. The answer holds the agent's move (1-based, and the
0-based action), the search's visit counts per action (index i is move i + 1; null without search),
the net's prior per action, the value estimate for the player to move in [-1, 1] (the search's root
value, or the net's own value without search), the legal moves, and the position and board after the
move, with whether it ended the game.

The search is AlphaZero's PUCT over the net (`search.mcts.MCTS` with the play settings of
`alphaloop move`: no root noise, one leaf per net call), `simulations` deep, fresh for every request;
it runs on a worker thread, one search per agent at a time, so the event loop keeps answering.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
from fastapi import APIRouter, Request

from alphaloop.games.notation import read_position
from alphaloop.serve.errors import APIError
from alphaloop.serve.models import ServedGame
from alphaloop.serve.schemas import MoveRequest

router = APIRouter()


def _agent(request: Request, game: str, model: str | None) -> ServedGame:
    from alphaloop.games.registry import game_names

    games: dict[str, ServedGame] = request.app.state.games
    if game not in game_names():
        raise APIError(404, f"game: no game {game!r}; the games are {', '.join(game_names())}", param="game")
    if model is not None:
        if model not in games:
            served = ", ".join(sorted(games)) or "none"
            raise APIError(404, f"model: no game agent {model!r}; served game agents: {served}", param="model",
                           code="model_not_found")
        if games[model].game != game:
            raise APIError(400, f"model: {model!r} plays {games[model].game}, not {game}", param="model")
        return games[model]
    playing = [agent for agent in games.values() if agent.game == game]
    if not playing:
        raise APIError(404, f"game: no agent serving {game} here; serve a {game} run to play it", param="game")
    if len(playing) > 1:
        raise APIError(400, f"model: {len(playing)} agents play {game} here ({', '.join(a.id for a in playing)}); "
                            "name one", param="model")
    return playing[0]


def _floats(values) -> list[float | None]:
    return [None if not math.isfinite(v) else round(float(v), 6) for v in values]


def choose_move(agent: ServedGame, state, simulations: int, seed: int) -> dict:
    """The agent's move in `state` with the search's statistics (runs on a worker thread)."""
    from alphaloop.search.base import most_visited, play_config
    from alphaloop.search.mcts import MCTS
    from alphaloop.search.net_evaluator import NetEvaluator

    evaluator = NetEvaluator(agent.net)
    legal = state.legal_actions()
    with agent.lock:
        priors, values = evaluator.evaluate([state])
        prior, value = priors[0], float(values[0])
        visits = q = None
        if simulations == 0:
            action = max(legal, key=lambda a: prior[a])
        else:
            search = MCTS(evaluator, play_config(simulations), seed=seed)
            result = search.search(state)
            action = most_visited([result], np.random.default_rng(seed))[0]
            visits, q, value = result.visit_counts, result.q_values, float(result.root_value)
    after = state.clone()
    after.apply_action(action)
    returns = after.returns() if after.is_terminal() else None
    return {"move": action + 1, "action": action, "player": state.current_player(),
            "legal": [a + 1 for a in legal], "prior": _floats(prior),
            "visits": None if visits is None else [int(v) for v in visits],
            "q": None if q is None else _floats(q), "value": round(value, 6),
            "board": str(state), "position_after": after.to_moves(), "board_after": str(after),
            "game_over": returns is not None,
            "winner": None if returns is None or returns[0] == returns[1] else (0 if returns[0] > 0 else 1)}


@router.get("/v1/games")
async def list_games(request: Request) -> dict:
    """The served game agents."""
    return {"object": "list", "data": [{"id": g.id, "object": "game_agent", "game": g.game, "created": g.created,
                                        "root": str(g.net_dir)} for g in request.app.state.games.values()]}


@router.post("/v1/games/{game}/move")
async def move(game: str, body: MoveRequest, request: Request) -> dict:
    """The agent's move in a position, with its search's visit counts and value estimate."""
    agent = _agent(request, game, body.model)
    position = body.position.strip()
    try:
        state = read_position(game, position)
    except ValueError as exc:
        raise APIError(400, f"position: {exc}", param="position", code="illegal_position") from None
    answer = await asyncio.to_thread(choose_move, agent, state, body.simulations, body.seed)
    return {"object": "game.move", "game": game, "model": agent.id, "position": position,
            "simulations": body.simulations} | answer
