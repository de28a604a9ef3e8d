"""What an agent policy reads before each action: the task and its last `memory` turns.

By default the policy reads its whole transcript, which grows with every turn: a task twice as long
as any trained on puts the policy at positions and in contexts it has never seen, and a small model
fails there (measured: 0% on 4-5 file shell tasks after training on 1-3). Agent harnesses bound
the context instead: SWE-agent (Yang et al. 2024) shows only the last five observations in full,
and Lindenbauer et al. 2025 ("The Complexity Trap") find that masking old observations matches
summarising them at half the cost. With an env's `memory = N` the policy reads, before action i,

    the task prompt  +  turns i-N .. i-1  (each turn: the action's tokens, then the env's answer)

so every decision of a task of any length is made from a context of bounded size. An expert that
looks before it acts (`ls` before each `rm`) needs only the latest turns, and its actions remain a
function of what the policy reads -- the horizon no longer changes the input's distribution.

The transcript is still recorded whole (`Episode.action_ids`, with `info["memory"]`); training
reads it as one row per action (`turn_rows`): the context that action was taken in, and the action.
"""

from __future__ import annotations

from collections.abc import Sequence

from alphaloop.episode import Episode


def memory_of(episode: Episode) -> int:
    """The memory the episode was played with (0: the whole transcript)."""
    return int(episode.info.get("memory") or 0)


def token_runs(mask: Sequence[int]) -> list[tuple[int, int, bool]]:
    """The transcript as alternating runs: (start, end, is the policy's action) over `action_mask`."""
    runs: list[tuple[int, int, bool]] = []
    for position, flag in enumerate(mask):
        if runs and runs[-1][2] == bool(flag):
            runs[-1] = (runs[-1][0], position + 1, bool(flag))
        else:
            runs.append((position, position + 1, bool(flag)))
    return runs


def action_spans(mask: Sequence[int]) -> list[tuple[int, int]]:
    """(start, end) offsets in the transcript of each action's tokens (runs of mask 1)."""
    return [(start, end) for start, end, is_action in token_runs(mask) if is_action]


def view_start(starts: Sequence[int], memory: int) -> int:
    """Where the policy's view of the transcript begins before the next action, given the offsets
    `starts` at which the actions so far began: the start of the `memory`-th latest turn (0 for all)."""
    if memory <= 0 or len(starts) <= memory:
        return 0
    return starts[-memory]


def learned_mask(episode: Episode) -> list[int]:
    """`action_mask` with the expert's deliberate mistakes (`info["mistakes"]`, `envs.agent.Mistake`)
    zeroed too: the tokens a loss learns from. The action mask itself keeps them, as it marks the turns."""
    mask, mistakes = list(episode.action_mask), set(episode.info.get("mistakes") or ())
    for turn, (start, end) in enumerate(action_spans(mask) if mistakes else ()):
        if turn in mistakes:
            mask[start:end] = [0] * (end - start)
    return mask


def turn_rows(episode: Episode) -> list[Episode]:
    """One row per action of an agent episode played with memory: `prompt_ids` = the context the action
    was taken in (the prompt and its last `memory` turns), `action_ids` = the action's tokens (all the
    policy's), `logprobs` = their sampling log-probs. `info` holds `turn` (the action's index) and
    `truncated`. The row of a deliberate mistake of the expert (`info["mistakes"]`) has an all-zero
    `action_mask`: it is kept (one row per action) but teaches nothing. An episode without memory (or a
    single-turn one) is its own single row."""
    memory = memory_of(episode)
    if memory <= 0 or not episode.action_mask:
        return [episode]
    spans = action_spans(episode.action_mask)
    mistakes = set(episode.info.get("mistakes") or ())
    rows = []
    for turn, (start, end) in enumerate(spans):
        begin = view_start([s for s, _ in spans[:turn]], memory)
        rows.append(Episode(
            observations=[], actions=[episode.actions[turn]] if turn < len(episode.actions) else [],
            prompt_ids=list(episode.prompt_ids) + list(episode.action_ids[begin:start]),
            action_ids=list(episode.action_ids[start:end]),
            logprobs=list(episode.logprobs[start:end]) if episode.logprobs else [],
            action_mask=[0] * (end - start) if turn in mistakes else [],
            rewards=list(episode.rewards), success=episode.success, harm=episode.harm,
            truncated=episode.truncated, info={"turn": turn}))
    return rows


def rows_of(episodes: Sequence[Episode]) -> tuple[list[Episode], list[int]]:
    """Every episode's `turn_rows`, flattened, and for each row the index of its episode."""
    rows: list[Episode] = []
    owner: list[int] = []
    for index, episode in enumerate(episodes):
        mine = turn_rows(episode)
        rows += mine
        owner += [index] * len(mine)
    return rows, owner


def uses_memory(episodes: Sequence[Episode]) -> bool:
    return any(memory_of(e) > 0 for e in episodes)
