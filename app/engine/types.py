"""Plain dataclasses the engine layer speaks: requests in, chunks and completions out."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sampling:
    """Sampling controls with defaults already applied by the API layer."""

    max_tokens: int
    temperature: float
    top_p: float
    top_k: int | None = None
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    ignore_eos: bool = False  # generate past the end-of-text tokens, to max_tokens or a stop string


@dataclass(frozen=True)
class Grammar:
    """Constrained decoding: `kind` is json_schema, regex or lark; `text` the grammar itself."""

    kind: str
    text: str
    param: str | None = "format"  # the client's field it came from; None: the server's own (tool calls)


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: chat `messages`, or a `prompt` (templated as one user turn unless `raw`)."""

    model: str
    sampling: Sampling
    messages: tuple[dict[str, str], ...] = ()
    prompt: str | None = None
    raw: bool = False
    grammar: Grammar | None = None
    tools: tuple[str, ...] = ()  # JSON function schemas for the engine's tool-call support

    @property
    def operation(self) -> str:
        """The GenAI operation name (spans)."""
        return "chat" if self.messages else "text_completion"

    def chat_messages(self) -> list[dict[str, str]]:
        if self.prompt is not None:
            return [{"role": "user", "content": self.prompt}]
        return [dict(m) for m in self.messages]


NO_SAMPLING = Sampling(max_tokens=0, temperature=0.0, top_p=1.0)


@dataclass(frozen=True)
class EmbeddingRequest:
    """Vectors for `inputs` (texts, or token id lists) from an embedding model."""

    model: str
    inputs: tuple[str | tuple[int, ...], ...]
    sampling: Sampling = NO_SAMPLING  # nothing is sampled; spans read it all the same
    messages: tuple = ()
    prompt: str | None = None
    raw: bool = False
    operation = "embeddings"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True)
class Chunk:
    """One step of a stream: a text delta, and on the last step the finish reason and usage."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    logprobs: tuple[TokenLogprob, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass
class Timings:
    """Wall-clock phases of one request, in seconds (queue: waiting for a slot)."""

    queue_seconds: float = 0.0
    time_to_first_token_seconds: float = 0.0
    total_seconds: float = 0.0
    completion_tokens_per_second: float = 0.0


@dataclass
class Completion:
    model: str
    text: str
    finish_reason: str
    usage: Usage
    timings: Timings = field(default_factory=Timings)
    logprobs: tuple[TokenLogprob, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass
class Embeddings:
    model: str
    vectors: list[list[float]]
    usage: Usage
    timings: Timings = field(default_factory=Timings)
    finish_reason: str = "stop"
