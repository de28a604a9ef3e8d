"""The request bodies the server accepts, as pydantic models: OpenAI's fields, checked strictly.

Strict types (a string is not a number, 1.5 is not an int) and closed models (an unknown field is an
error, as OpenAI's API answers "Unrecognized request argument"), so a mistake in a request is named
rather than guessed around. Ranges are OpenAI's: temperature in [0, 2], top_p in (0, 1], n up to 128,
up to 20 top log-probs; vLLM's extras `top_k` (0 or -1: off) and `ignore_eos` are accepted too, as
vLLM's server accepts them. Fields OpenAI defines that these models cannot honour (penalties, logit
bias, tools, echo, suffix) are accepted only at their neutral values and refused otherwise, by name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_STOPS = 16


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(Strict):
    include_usage: bool = Field(False, description="send a last chunk with the usage counts (and no choices)")


class Sampling(Strict):
    """The fields completions and chat completions share."""

    model: str = Field(description="a model id from GET /v1/models")
    max_tokens: int | None = Field(None, ge=1, description="tokens to generate at most (default: up to the context)")
    temperature: float = Field(1.0, ge=0, le=2, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: the smallest set of tokens with this mass")
    top_k: int = Field(0, ge=-1, description="only the k most probable tokens (0 or -1: all), as vLLM")
    n: int = Field(1, ge=1, le=128, description="completions per prompt")
    stop: str | list[str] | None = Field(None, description=f"up to {MAX_STOPS} strings that end a completion "
                                                           "(not included in it)")
    seed: int | None = Field(None, ge=-(2**63), lt=2**64, description="the same seed gives the same samples")
    stream: bool = Field(False, description="send server-sent events as tokens are generated")
    stream_options: StreamOptions | None = None
    ignore_eos: bool = Field(False, description="keep generating after EOS until max_tokens (vLLM's extra)")
    presence_penalty: float = Field(0.0, ge=-2, le=2, description="only 0 is supported")
    frequency_penalty: float = Field(0.0, ge=-2, le=2, description="only 0 is supported")
    logit_bias: dict[str, float] | None = Field(None, description="only empty is supported")
    user: str | None = Field(None, description="ignored")

    @model_validator(mode="after")
    def _supported(self):
        stops = self.stop_list()
        if len(stops) > MAX_STOPS:
            raise ValueError(f"stop: expected at most {MAX_STOPS} strings, got {len(stops)}")
        if any(s == "" for s in stops):
            raise ValueError("stop: expected non-empty strings, got an empty one")
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) != 0:
                raise ValueError(f"{name}: only 0 is supported by this server, got {getattr(self, name)}")
        if self.logit_bias:
            raise ValueError("logit_bias: not supported by this server; leave it out or send {}")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options: only allowed with stream: true")
        return self

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(Sampling):
    """POST /v1/completions."""

    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="a string, a list of strings, or token ids (a list, or a list of lists); strings get BOS "
                    "prepended, token ids are used as given")
    logprobs: int | None = Field(None, ge=0, le=20, description="log-probs of the sampled tokens and of this many "
                                                                "most probable ones")
    echo: bool = Field(False, description="only false is supported")
    suffix: str | None = Field(None, description="only null is supported")
    best_of: int | None = Field(None, ge=1, le=128, description="only equal to n is supported")

    @model_validator(mode="after")
    def _completion_supported(self):
        if self.echo:
            raise ValueError("echo: not supported by this server; leave it out or send false")
        if self.suffix is not None:
            raise ValueError("suffix: not supported by this server (no infilling); leave it out")
        if self.best_of is not None and self.best_of != self.n:
            raise ValueError(f"best_of: only equal to n ({self.n}) is supported, got {self.best_of}")
        if isinstance(self.prompt, list) and not self.prompt:
            raise ValueError("prompt: expected at least one prompt, got an empty list")
        return self

    def prompts(self) -> list[str | list[int]]:
        """The prompts, each a string or a list of token ids."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if all(isinstance(p, int) for p in self.prompt):
            return [list(self.prompt)]
        return list(self.prompt)


class TextPart(Strict):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message; OpenAI's extra message fields (name, tool calls, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None


class ChatCompletionRequest(Sampling):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1, description="the conversation; the last user message is "
                                                                  "the prompt (see the chat template)")
    max_completion_tokens: int | None = Field(None, ge=1, description="the newer name of max_tokens (wins over it)")
    logprobs: bool = Field(False, description="return the sampled tokens' log-probs")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="and this many most probable tokens' (needs "
                                                                    "logprobs: true)")
    tools: list | None = Field(None, description="only null or empty is supported")
    tool_choice: str | dict | None = Field(None, description="only null or 'none' is supported")
    response_format: dict | None = Field(None, description="only {'type': 'text'} is supported")
    parallel_tool_calls: bool | None = Field(None, description="ignored")
    store: bool | None = Field(None, description="ignored")
    metadata: dict | None = Field(None, description="ignored")

    @model_validator(mode="after")
    def _chat_supported(self):
        if self.top_logprobs is not None and self.top_logprobs > 0 and not self.logprobs:
            raise ValueError("top_logprobs: needs logprobs: true")
        if self.tools:
            raise ValueError("tools: not supported by this server (character models call no tools)")
        if self.tool_choice not in (None, "none"):
            raise ValueError("tool_choice: only 'none' is supported by this server")
        if self.response_format not in (None, {"type": "text"}):
            raise ValueError("response_format: only {'type': 'text'} is supported by this server")
        return self

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class MoveRequest(Strict):
    """POST /v1/games/{game}/move."""

    model: str | None = Field(None, description="a game agent's id from GET /v1/games (default: the only agent "
                                                "serving this game)")
    position: str = Field("", max_length=64, description="the moves so far, 1-based digits (a column 1-7 for "
                                                         "connect4, a cell 1-9 for tictactoe); '' = the start")
    simulations: int = Field(100, ge=0, le=20_000, description="MCTS simulations; 0 = the raw net's best move")
    seed: int = Field(0, ge=0, lt=2**32, description="breaks ties between equally visited moves")
