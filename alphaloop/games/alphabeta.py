"""Depth-limited negamax alpha-beta: graded-strength opponents and the imitation expert.

Alpha-beta (Knuth & Moore, "An analysis of alpha-beta pruning", 1975) in negamax form:

    value(s, d, a, b) = h(s)                                   if d = 0 or s is terminal
                      = max_m -value(s·m, d - 1, -b, -a)       cut off as soon as the max >= b

with a transposition table (Zobrist-free: connect four's `position + mask` is already a
unique key) storing exact / lower / upper bounds, and moves ordered table-move first,
then centre-first (centre columns take part in more lines, so they fail high early).

Connect four runs on Pons' bitboards (see `connect4.py`) with his cheap tactical rules at
every node, before the depth test: take an immediate win; if the opponent threatens two
cells we can play, we lose; if one, we must block it; never play directly under an
opponent's winning cell. The leaf heuristic (mover's view) counts open threats (empty
cells completing four), threats on the rows that favour their owner under zugzwang (odd
rows for the first player, even rows for the second: Allis, "A knowledge-based approach
of connect-four", 1988), and stones in the centre columns:

    h = 3 (T_me - T_opp) + 2 (P_me - P_opp) + 2 (C_me - C_opp) + (N_me - N_opp)   (|h| < 300)

with T = threat cells, P = threat cells on the owner's good rows, C = stones in column 4,
N = stones in columns 3 and 5.

Proven results score +-(1000 - k), where k is the ply of the winning stone, so faster wins
and slower losses are preferred and any proven win beats any heuristic value.

Other games (tic-tac-toe) use the same search over `clone` / `apply_action` with h = 0.
`AlphaBetaPlayer(depth)` gives a ladder of strengths (depth 1..8); `noise` makes it
deliberately imperfect (epsilon-greedy), e.g. for a teacher that RL should surpass.
bitbully is not needed.
"""

from __future__ import annotations

import random

from alphaloop.games.base import GameState
from alphaloop.games.connect4 import BOARD, BOTTOM_ROW, COLUMN, MAX_MOVES, Connect4State, winning_cells

WIN = 1000
INF = 10_000
CENTRE_ORDER = (3, 2, 4, 1, 5, 0, 6)
CENTRE = COLUMN[3]
NEAR_CENTRE = COLUMN[2] | COLUMN[4]
_ROWS = [sum(1 << (7 * c + r) for c in range(7)) for r in range(6)]
ODD_ROWS = _ROWS[0] | _ROWS[2] | _ROWS[4]        # rows 1, 3, 5 counted from the bottom
EVEN_ROWS = _ROWS[1] | _ROWS[3] | _ROWS[5]
_EXACT, _LOWER, _UPPER = 0, 1, 2
_TT_LIMIT = 2_000_000


def heuristic(me: int, opp: int, my_win: int, opp_win: int) -> int:
    """Leaf value for the mover (see the module docstring): threats, parity threats, centre."""
    if (me | opp).bit_count() % 2 == 0:          # the mover is the first player
        my_good, opp_good = ODD_ROWS, EVEN_ROWS
    else:
        my_good, opp_good = EVEN_ROWS, ODD_ROWS
    return (3 * (my_win.bit_count() - opp_win.bit_count())
            + 2 * ((my_win & my_good).bit_count() - (opp_win & opp_good).bit_count())
            + 2 * ((me & CENTRE).bit_count() - (opp & CENTRE).bit_count())
            + (me & NEAR_CENTRE).bit_count() - (opp & NEAR_CENTRE).bit_count())


class AlphaBetaSearch:
    """Negamax alpha-beta with a transposition table that persists across calls."""

    def __init__(self) -> None:
        self.tt: dict = {}
        self.nodes = 0

    # ---- connect four on bitboards ------------------------------------------------------
    def c4(self, position: int, mask: int, n: int, depth: int, alpha: int, beta: int) -> int:
        """Value for the player to move of the non-terminal position with `n` stones."""
        self.nodes += 1
        if n >= MAX_MOVES:
            return 0
        possible = (mask + BOTTOM_ROW) & BOARD
        my_win = winning_cells(position, mask)
        if my_win & possible:
            return WIN - (n + 1)
        opp = position ^ mask
        opp_win = winning_cells(opp, mask)
        forced = possible & opp_win
        if forced:
            if forced & (forced - 1):
                return -(WIN - (n + 2))
            possible = forced
        possible &= ~(opp_win >> 1)
        if not possible:
            return -(WIN - (n + 2))
        if n + 1 == MAX_MOVES:
            return 0                              # our (non-winning) stone fills the board
        # We cannot win before our 2nd stone from here: tighten the upper bound.
        if beta > WIN - (n + 3):
            beta = WIN - (n + 3)
            if alpha >= beta:
                return beta
        if depth <= 0:
            return heuristic(position, opp, my_win, opp_win)

        key = position + mask
        alpha0 = alpha
        tt_move = -1
        entry = self.tt.get(key)
        if entry is not None:
            e_depth, flag, value, tt_move = entry
            if e_depth >= depth:
                if flag == _EXACT:
                    return value
                if flag == _LOWER:
                    alpha = max(alpha, value)
                else:
                    beta = min(beta, value)
                if alpha >= beta:
                    return value

        best, best_move = -INF, -1
        order = CENTRE_ORDER if tt_move < 0 else (tt_move, *CENTRE_ORDER)
        for c in order:
            bit = possible & COLUMN[c]
            if not bit:
                continue
            possible ^= bit                       # so a repeated tt_move is skipped
            value = -self.c4(opp, mask | bit, n + 1, depth - 1, -beta, -alpha)
            if value > best:
                best, best_move = value, c
                if value > alpha:
                    alpha = value
                    if alpha >= beta:
                        break
        flag = _UPPER if best <= alpha0 else _LOWER if best >= beta else _EXACT
        if len(self.tt) > _TT_LIMIT:
            self.tt.clear()
        self.tt[key] = (depth, flag, best, best_move)
        return best

    # ---- any game through the state API ------------------------------------------------
    def generic(self, state: GameState, depth: int, alpha: int, beta: int) -> int:
        self.nodes += 1
        if state.is_terminal():
            n = len(state.move_history())
            return -(WIN - n) if any(r != 0 for r in state.returns()) else 0
        if depth <= 0:
            return 0
        key = (state.game_name, str(state))       # the board picture is a unique key
        alpha0 = alpha
        entry = self.tt.get(key)
        if entry is not None and entry[0] >= depth:
            _, flag, value, _ = entry
            if flag == _EXACT:
                return value
            if flag == _LOWER:
                alpha = max(alpha, value)
            else:
                beta = min(beta, value)
            if alpha >= beta:
                return value
        best = -INF
        for a in state.legal_actions():
            child = state.clone()
            child.apply_action(a)
            value = -self.generic(child, depth - 1, -beta, -alpha)
            if value > best:
                best = value
                if value > alpha:
                    alpha = value
                    if alpha >= beta:
                        break
        flag = _UPPER if best <= alpha0 else _LOWER if best >= beta else _EXACT
        self.tt[key] = (depth, flag, best, -1)
        return best

    # ---- root ---------------------------------------------------------------------------
    def child_value(self, state: GameState, action: int, depth: int, alpha: int, beta: int) -> int:
        """Value for the mover of playing `action` in `state`, searched `depth` plies deep."""
        if isinstance(state, Connect4State):
            if state.is_winning_move(action):
                return WIN - (state.num_moves() + 1)
            position, mask = state.bitboards()
            bit = (mask + (1 << (7 * action))) & COLUMN[action]
            return -self.c4(position ^ mask, mask | bit, state.num_moves() + 1, depth - 1, -beta, -alpha)
        child = state.clone()
        child.apply_action(action)
        return -self.generic(child, depth - 1, -beta, -alpha)

    def move_values(self, state: GameState, depth: int) -> list[int | None]:
        """Exact depth-limited value of every legal action (None for illegal ones)."""
        out: list[int | None] = [None] * state.num_actions
        for a in state.legal_actions():
            out[a] = self.child_value(state, a, depth, -INF, INF)
        return out

    def best_moves(self, state: GameState, depth: int) -> tuple[int, list[int]]:
        """(best value, all actions reaching it). Iterative deepening fills the table with
        good move orderings first; the last pass uses the window (best - 1, inf) so every
        action tied with the best gets its exact value and worse ones fail low cheaply."""
        legal = state.legal_actions()
        if not legal:
            raise ValueError(f"state must be non-terminal, got a finished game:\n{state}")
        if isinstance(state, Connect4State):       # (the generic search has no move ordering)
            legal = [c for c in CENTRE_ORDER if c in legal]
            for d in range(1, depth):
                for a in legal:
                    self.child_value(state, a, d, -INF, INF)
        best, tied = -INF, []
        for a in legal:
            value = self.child_value(state, a, depth, best - 1, INF)
            if value > best:
                best, tied = value, [a]
            elif value == best:
                tied.append(a)
        return best, tied


class AlphaBetaPlayer:
    """Depth-limited alpha-beta player; ties broken at random; with probability `noise` a
    uniformly random legal move instead (a deliberately imperfect player)."""

    def __init__(self, depth: int = 4, seed: int = 0, noise: float = 0.0) -> None:
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an int >= 1 (plies searched), got {depth!r}")
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise must be a probability in [0, 1], got {noise!r}")
        self.depth = depth
        self.noise = noise
        self._rng = random.Random(seed)
        self.search = AlphaBetaSearch()

    @property
    def nodes(self) -> int:
        """Nodes searched so far (for speed measurements)."""
        return self.search.nodes

    def value(self, state: GameState) -> int:
        """Depth-limited value for the player to move (+-(1000 - ply) for proven results)."""
        return self.search.best_moves(state, self.depth)[0]

    def move_values(self, state: GameState) -> list[int | None]:
        return self.search.move_values(state, self.depth)

    def choose(self, state: GameState) -> int:
        legal = state.legal_actions()
        if not legal:
            raise ValueError(f"state must be non-terminal to choose a move, got a finished game:\n{state}")
        if self.noise and self._rng.random() < self.noise:
            return self._rng.choice(legal)
        return self._rng.choice(self.search.best_moves(state, self.depth)[1])
