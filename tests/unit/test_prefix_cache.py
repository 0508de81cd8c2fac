"""The server's account of the engine's prefix cache: bytes per token from the model's shape, the
512-token allocation steps, hits by leading messages, hot heads, and the budget."""

from __future__ import annotations

import json

from app.engine.catalog import ModelSource, embedded_model_file
from app.engine.prefix_cache import GROW_TOKENS, PrefixCacheAccount, kv_token_bytes
from app.engine.types import GenerationRequest, Sampling

SAMPLING = Sampling(max_tokens=4, temperature=0.0, top_p=1.0)
SYSTEM = {"role": "system", "content": "You follow the house rules."}


def chat(*messages: dict, tools: tuple[str, ...] = ()) -> GenerationRequest:
    return GenerationRequest(model="m", sampling=SAMPLING, messages=messages, tools=tools)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def test_bytes_per_token_come_from_the_gguf_header():
    path = embedded_model_file()
    source = ModelSource("m", "gguf", "embedded", str(path.parent), (path.name,))
    # SmolLM2-135M: 30 layers, 3 KV heads of 64; K and V in f16
    assert kv_token_bytes(source) == 2 * 30 * 3 * 64 * 2


def test_bytes_per_token_come_from_config_json(tmp_path):
    config = {"num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2, "hidden_size": 256}
    (tmp_path / "config.json").write_text(json.dumps(config))
    source = ModelSource("m", "safetensors", "model_path", str(tmp_path))
    assert kv_token_bytes(source) == 2 * 4 * 2 * 32 * 2


def test_a_sequence_costs_whole_allocation_steps_and_passing_the_budget_asks_for_a_trim():
    account = PrefixCacheAccount(budget_bytes=3 * GROW_TOKENS * 100, token_bytes=100)
    assert not account.finished(chat(user("a")), "reply", tokens=10)  # one step
    assert account.held_bytes == GROW_TOKENS * 100
    assert not account.finished(chat(user("b")), "reply", tokens=GROW_TOKENS + 1)  # two steps
    assert account.held_bytes == 3 * GROW_TOKENS * 100 and not account.over_budget
    assert account.finished(chat(user("c")), "reply", tokens=1)  # over: trim
    account.trimming = True
    assert not account.finished(chat(user("d")), "reply", tokens=1)  # one trim at a time
    account.cleared()
    assert account.held_bytes == 0 and account.entries == 0


def test_a_request_whose_leading_messages_were_cached_is_a_hit():
    account = PrefixCacheAccount(budget_bytes=10**9, token_bytes=1)
    first = chat(SYSTEM, user("What is two plus two?"))
    assert not account.admit(first)
    account.finished(first, "Four.", tokens=20)
    assert account.admit(chat(SYSTEM, user("And three plus three?")))  # the system prompt: a hit
    follow_up = chat(
        SYSTEM, user("What is two plus two?"), {"role": "assistant", "content": "Four."}, user("x")
    )
    assert account.admit(follow_up)  # a chat's next turn
    assert not account.admit(chat(SYSTEM, user("Hi"), tools=('{"name": "f"}',)))  # other tools
    assert not account.admit(chat({"role": "system", "content": "Other rules."}, user("Hi")))
    assert (account.hits, account.misses) == (2, 3)
    account.cleared()
    assert not account.admit(chat(SYSTEM, user("After a trim.")))


def test_hot_heads_are_the_recurring_system_prompts_with_their_tools():
    account = PrefixCacheAccount(budget_bytes=10**9, token_bytes=1)
    tools = ('{"name": "f"}',)
    for question in ("a", "b", "c"):
        account.admit(chat(SYSTEM, user(question), tools=tools))
    account.admit(chat({"role": "system", "content": "Seen once."}, user("a")))
    account.admit(chat(user("no system prompt")))
    (head,) = account.hot_heads()
    assert head.messages == (SYSTEM,) and head.tools == tools and head.seen == 3


def test_a_trim_waits_for_an_idle_runner_unless_the_cache_is_past_twice_its_budget(monkeypatch):
    from app.engine import prefix_trim
    from app.engine.concurrency import Replica

    started: list[bool] = []
    monkeypatch.setattr(prefix_trim, "spawn_background", lambda job: started.append(True))
    account = PrefixCacheAccount(budget_bytes=100, token_bytes=1)
    replica = Replica(runner=None, prefix_cache=account, active_streams=1)
    account.held_bytes = 150  # over budget, a stream still decoding
    prefix_trim.after_generation(None, replica, open_stream=None)
    assert not started and not account.trimming
    replica.waiting_at_gate = 1  # the only one taken waits at the gate: nothing runs in the engine
    prefix_trim.after_generation(None, replica, open_stream=None)
    assert started == [True] and account.trimming
    account.trimming, replica.waiting_at_gate = False, 0
    account.held_bytes = 250  # past twice the budget: it trims even with a stream running
    prefix_trim.after_generation(None, replica, open_stream=None)
    assert started == [True, True]


def test_warming_yields_to_a_clients_request():
    """A head is warmed only while no request is on the runner; warming stops once one comes."""
    from app.engine import prefix_trim
    from app.engine.concurrency import Replica

    account = PrefixCacheAccount(budget_bytes=10**9, token_bytes=1)
    for system in ("Rules one.", "Rules two."):
        for question in ("a", "b"):
            account.admit(chat({"role": "system", "content": system}, user(question)))
    replica = Replica(runner=None, prefix_cache=account)
    model = type("Model", (), {"model_id": "m"})()
    warmed: list[str] = []
    client_comes = [False]

    def open_stream(model, request, replica, count):
        """A warm: taken on the runner while open; a client's request may come meanwhile."""
        warmed.append(request.messages[0]["content"])
        replica.active_streams += 1 + client_comes[0]

        class Warm:
            def __iter__(self):
                return iter(())

            def close(self):
                replica.active_streams -= 1

        return Warm()

    prefix_trim.warm(model, replica, open_stream)  # nobody comes: every hot head
    assert len(warmed) == 2 and account.rewarms == 2 and account.warms_yielded == 0
    client_comes[0] = True  # a client's request is taken while the first head warms
    prefix_trim.warm(model, replica, open_stream)
    assert len(warmed) == 3 and account.rewarms == 3 and account.warms_yielded == 1
    prefix_trim.warm(model, replica, open_stream)  # it is still on the runner: nothing is warmed
    assert len(warmed) == 3 and account.warms_yielded == 2
