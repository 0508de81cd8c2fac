"""Our request -> a mistralrs request, and mistralrs responses -> our chunks. The one place where
a new sampling field meets the engine."""

from __future__ import annotations

from typing import Any

from app.engine.types import Chunk, GenerationRequest, Sampling, TokenLogprob, ToolCall, Usage


def _sampling_kwargs(s: Sampling) -> dict[str, Any]:
    return {
        "max_tokens": s.max_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": s.top_k,
        "min_p": s.min_p,
        "presence_penalty": s.presence_penalty,
        "frequency_penalty": s.frequency_penalty,
        "repetition_penalty": s.repetition_penalty,
        "logit_bias": dict(s.logit_bias) or None,
        "stop_seqs": list(s.stop) or None,
        "ignore_eos": s.ignore_eos,
    }


def _grammar_kwargs(request: GenerationRequest) -> dict[str, Any]:
    if request.grammar is None:
        return {}
    return {"grammar": request.grammar.text, "grammar_type": request.grammar.kind}


def to_engine_chat_request(request: GenerationRequest, n_choices: int = 1) -> Any:
    import mistralrs

    tools: dict[str, Any] = {}
    if request.tools:
        tools = {"tool_schemas": list(request.tools), "tool_choice": mistralrs.ToolChoice.Auto}
    return mistralrs.ChatCompletionRequest(
        messages=request.chat_messages(),
        model=request.model,
        logprobs=request.sampling.logprobs,
        top_logprobs=request.sampling.top_logprobs,
        stream=True,
        n_choices=n_choices,
        **_sampling_kwargs(request.sampling),
        **_grammar_kwargs(request),
        **tools,
    )


def to_engine_completion_request(request: GenerationRequest) -> Any:
    import mistralrs

    return mistralrs.CompletionRequest(
        prompt=request.prompt or "",
        model=request.model,
        **_sampling_kwargs(request.sampling),
        **_grammar_kwargs(request),
    )


def to_usage(engine_usage: Any) -> Usage | None:
    if engine_usage is None:
        return None
    return Usage(int(engine_usage.prompt_tokens), int(engine_usage.completion_tokens))


def to_logprob(entry: Any) -> TokenLogprob:
    """The engine gives the chosen token as text and the alternatives' text in `bytes`."""
    top = tuple((alt.bytes or "", float(alt.logprob)) for alt in entry.top_logprobs or ())
    return TokenLogprob(entry.token, float(entry.logprob), top)


def to_tool_calls(calls: Any) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(call.id, call.function.name, call.function.arguments) for call in calls or ())


def to_chunk(response: Any) -> Chunk:
    choice = response.choices[0] if response.choices else None
    usage = to_usage(getattr(response, "usage", None))
    if choice is None:
        return Chunk(text="", usage=usage)
    delta = choice.delta
    logprobs = (to_logprob(choice.logprobs),) if choice.logprobs is not None else ()
    return Chunk(
        text=delta.content or "",
        finish_reason=choice.finish_reason,
        usage=usage,
        logprobs=logprobs,
        tool_calls=to_tool_calls(getattr(delta, "tool_calls", None)),
    )
