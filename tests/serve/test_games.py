"""The game endpoint: a position in; the move, the search's visit counts and the value out."""

from __future__ import annotations

import httpx
import pytest

from alphaloop.games.registry import from_moves
from alphaloop.policies.nets import PolicyValueNet


@pytest.fixture(scope="module")
def http(served):
    with httpx.Client(base_url=served.url, timeout=60) as client:
        yield client


def test_games_lists_the_agents(http):
    agents = http.get("/v1/games").json()["data"]
    assert [(a["id"], a["game"]) for a in agents] == [("ttt", "tictactoe")]


def test_a_search_returns_visits_summing_to_the_budget_and_a_legal_move(http):
    answer = http.post("/v1/games/tictactoe/move", json={"position": "15", "simulations": 40}).json()
    assert answer["model"] == "ttt" and answer["position"] == "15" and answer["player"] == 0
    assert answer["legal"] == [2, 3, 4, 6, 7, 8, 9]
    assert sum(answer["visits"]) == 40 and answer["visits"][0] == answer["visits"][4] == 0   # occupied cells
    assert answer["move"] in answer["legal"] and answer["action"] == answer["move"] - 1
    assert answer["visits"][answer["action"]] == max(answer["visits"])
    assert -1 <= answer["value"] <= 1
    assert answer["q"][0] is None and answer["prior"][0] == 0
    assert answer["position_after"] == "15" + str(answer["move"]) and answer["game_over"] is False
    again = http.post("/v1/games/tictactoe/move", json={"position": "15", "simulations": 40}).json()
    assert again == answer                                   # a fresh, seeded search: the same answer


def test_the_search_finds_an_immediate_win(http):
    # X holds cells 1 and 2, O holds 4 and 5: X wins at 3, and the search sees the terminal value.
    answer = http.post("/v1/games/tictactoe/move", json={"position": "1425", "simulations": 200}).json()
    assert answer["move"] == 3 and answer["game_over"] is True and answer["winner"] == 0
    assert answer["value"] > 0.5


def test_without_search_the_raw_nets_best_legal_move(served, http):
    from game_helpers import independent_argmax

    net = PolicyValueNet.load(served.net)
    for position in ("", "5", "519", "5193"):
        answer = http.post("/v1/games/tictactoe/move", json={"position": position, "simulations": 0}).json()
        assert answer["visits"] is None
        assert answer["action"] == independent_argmax(net, [from_moves("tictactoe", position)])[0]
