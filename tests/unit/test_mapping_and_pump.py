"""Our request -> the engine's (every sampling field, once), the engine's chunks -> ours, and the two
stream sources: the direct one and the pump thread that hands chunks to the gevent hub."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import gevent
import pytest

from app.engine.mapping import to_chunk, to_engine_chat_request, to_engine_completion_request
from app.engine.pump import DirectSource, PumpedSource
from app.engine.types import GenerationRequest, Grammar, Sampling
from tests.helpers import fake_chunk

SAMPLING = Sampling(
    max_tokens=7,
    temperature=0.3,
    top_p=0.8,
    top_k=5,
    min_p=0.1,
    presence_penalty=0.2,
    frequency_penalty=0.4,
    repetition_penalty=1.1,
    logit_bias=((42, -1.5),),
    stop=("END",),
    logprobs=True,
    top_logprobs=2,
    ignore_eos=True,
)


@pytest.fixture
def recorded(monkeypatch):
    """The engine's request classes replaced by a record of the keywords they are built with."""
    import mistralrs

    for name in ("ChatCompletionRequest", "CompletionRequest"):
        monkeypatch.setattr(mistralrs, name, lambda **fields: SimpleNamespace(**fields))


def test_every_sampling_field_reaches_the_engines_chat_request(recorded):
    request = GenerationRequest(
        model="m",
        sampling=SAMPLING,
        messages=({"role": "user", "content": "Hi"},),
        grammar=Grammar("regex", "[a-z]+", param="regex"),
        tools=('{"type": "function", "function": {"name": "f"}}',),
    )
    engine = to_engine_chat_request(request, n_choices=2)
    assert (engine.max_tokens, engine.temperature, engine.top_p, engine.top_k) == (7, 0.3, 0.8, 5)
    assert engine.min_p == pytest.approx(0.1) and engine.repetition_penalty == pytest.approx(1.1)
    assert engine.presence_penalty == pytest.approx(0.2) and engine.frequency_penalty == pytest.approx(0.4)
    assert engine.logit_bias == {42: -1.5} and engine.stop_seqs == ["END"] and engine.ignore_eos is True
    assert engine.logprobs and engine.top_logprobs == 2 and engine.n_choices == 2 and engine.stream
    assert (engine.grammar, engine.grammar_type) == ("[a-z]+", "regex") and engine.tool_schemas


def test_a_raw_prompt_becomes_a_completion_request(recorded):
    engine = to_engine_completion_request(
        GenerationRequest(model="m", sampling=SAMPLING, prompt="Once", raw=True)
    )
    assert engine.prompt == "Once" and engine.max_tokens == 7 and engine.stop_seqs == ["END"]
    assert engine.ignore_eos is True


def test_an_engine_chunk_becomes_ours_with_its_usage_and_calls():
    last = fake_chunk("!", "stop", prompt_tokens=4, completion=3)
    chunk = to_chunk(last)
    assert (chunk.text, chunk.finish_reason) == ("!", "stop")
    assert (chunk.usage.prompt_tokens, chunk.usage.completion_tokens) == (4, 3)
    call = SimpleNamespace(id="c1", function=SimpleNamespace(name="f", arguments='{"a": 1}'))
    with_call = fake_chunk("")
    with_call.choices[0].delta.tool_calls = [call]
    assert [(c.id, c.name, c.arguments) for c in to_chunk(with_call).tool_calls] == [("c1", "f", '{"a": 1}')]
    assert to_chunk(SimpleNamespace(choices=[], usage=None)).text == ""


def test_the_direct_source_reads_on_the_callers_thread_and_tells_the_first_answer_once():
    firsts: list[int] = []
    source = DirectSource(iter([1, 2]), lambda r: r * 10, lambda: firsts.append(1))
    assert source.take() == [10] and source.take() == [20] and source.take() is None
    assert firsts == [1]
    cancelled = DirectSource(iter([1]), lambda r: r, lambda: firsts.append(2))
    cancelled.cancel()
    assert cancelled.take() is None and firsts == [1, 2]  # a cancel before any answer opens the gate


def test_the_pump_hands_every_chunk_to_the_hub_then_the_end_and_an_error_last():
    firsts: list[str] = []

    def engine():
        yield from ("a", "b", "c")
        raise ValueError("engine failed")

    source = PumpedSource(engine(), str.upper, lambda: firsts.append(threading.current_thread().name))
    taken: list[str] = []
    with pytest.raises(ValueError, match="engine failed"):
        while (batch := source.take(timeout=30)) is not None:
            taken.extend(batch)
    assert taken == ["A", "B", "C"] and len(firsts) == 1  # the first answer told once, on the hub
    assert firsts[0] == threading.main_thread().name
    ended = PumpedSource(iter(["x"]), str.upper)
    assert ended.take(timeout=30) == ["X"] or ended.take(timeout=30) == ["X"]
    assert ended.take(timeout=30) is None
    gevent.get_hub()  # the pump used the hub's own threadpool and loop


def test_a_wake_ends_a_pump_wait_early_with_nothing():
    release = threading.Event()

    def slow():
        release.wait(30)
        yield "late"

    source = PumpedSource(slow(), str)
    gevent.spawn(source.wake)  # runs while take() waits on the hub
    assert source.take(timeout=30) == []  # woken: nothing yet, the stream goes on
    release.set()
    source.cancel()
