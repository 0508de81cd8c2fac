"""The model pool on a fake runner factory: lazy loads shared by concurrent requests, the residency bound,
aliases, readiness."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.engine import ModelPool
from app.engine.faults import ModelLoadFailed, ModelNotFound, NoRoomToLoad
from app.settings import Settings
from tests.helpers import FakeRunner

MODELS = ("acme/a", "acme/b", "acme/c")


@pytest.fixture
def make_pool(tmp_path):
    for name in MODELS:
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "m.gguf").write_bytes(b"GGUF")

    def build(factory=None, **env: str) -> ModelPool:
        settings = Settings.from_env(
            {
                "LLM_ALLOWED_MODELS": "*",
                "LLM_MODEL_PATH": str(tmp_path / "models"),
                "HF_HOME": str(tmp_path / "hf"),
                "HF_HUB_OFFLINE": "1",
                **env,
            }
        )
        return ModelPool(settings, runner_factory=factory or (lambda source, config: FakeRunner()))

    return build


def states(pool: ModelPool) -> dict[str, str]:
    return {m["id"]: m["state"] for m in pool.describe()}


def use(pool: ModelPool, name: str) -> None:
    """One whole request: acquire the model, then release it."""
    pool.release(pool.acquire(name))


def test_past_the_bound_the_least_recently_used_idle_model_goes(make_pool):
    pool = make_pool(LLM_MAX_LOADED_MODELS="2")
    for name in ("acme/a", "acme/b", "acme/a", "acme/c"):
        use(pool, name)
    assert states(pool) == {"acme/a": "loaded", "acme/b": "not loaded", "acme/c": "loaded"}
    use(pool, "acme/b")
    assert states(pool) == {"acme/a": "not loaded", "acme/b": "loaded", "acme/c": "loaded"}
    described = {m["id"]: m for m in pool.describe()}
    assert (described["acme/b"]["loads"], described["acme/b"]["unloads"]) == (2, 1)


def test_a_model_held_by_a_request_is_never_unloaded(make_pool):
    pool = make_pool(LLM_MAX_LOADED_MODELS="1")
    busy = pool.acquire("acme/a")  # a request in flight holds it
    with pytest.raises(NoRoomToLoad) as caught:
        pool.acquire("acme/b")
    assert caught.value.retry_after == 2 and caught.value.max_loaded_models == 1
    assert states(pool) == {"acme/a": "loaded"}  # the refused name is not listed
    pool.release(busy)
    use(pool, "acme/b")
    assert states(pool) == {"acme/a": "not loaded", "acme/b": "loaded"}


def test_room_is_made_only_for_a_model_that_exists(make_pool):
    pool = make_pool(LLM_MAX_LOADED_MODELS="1")
    use(pool, "acme/a")
    with pytest.raises(ModelNotFound):
        pool.acquire("acme/missing")
    assert states(pool) == {"acme/a": "loaded"}


def test_an_engine_panic_is_a_failed_load_not_a_stuck_one(make_pool):
    class PanicException(BaseException):  # what the engine's Rust panics arrive as
        pass

    def panicking_factory(source, config):
        raise PanicException("called `Option::unwrap()` on a `None` value")

    pool = make_pool(factory=panicking_factory, LLM_ALLOWED_MODELS="acme/a,acme/b")
    pool.load_all()
    assert states(pool) == {"acme/a": "failed", "acme/b": "failed"}
    ready, detail = pool.readiness()
    assert not ready and detail["failed"]["acme/a"].startswith("called `Option::unwrap()`")


class Gate:
    """A load lock that tells when a second request has arrived to wait on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.arrivals = 0
        self.second_waiting = threading.Event()

    def __enter__(self) -> None:
        self.arrivals += 1
        if self.arrivals == 2:
            self.second_waiting.set()
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_concurrent_first_requests_share_one_load_and_its_failure(make_pool):
    release, calls = threading.Event(), []

    def slow_factory(source, config):
        calls.append(source.model_id)
        release.wait(10)
        raise ValueError("weights are corrupt")

    pool = make_pool(factory=slow_factory, LLM_ALLOWED_MODELS="acme/a")
    gate = pool._entries["acme/a"].load_lock = Gate()
    with ThreadPoolExecutor(2) as executor:
        first = executor.submit(pool.acquire, "acme/a")
        second = executor.submit(pool.acquire, "acme/a")
        assert gate.second_waiting.wait(10)
        release.set()
        for future in (first, second):
            with pytest.raises(ModelLoadFailed, match="weights are corrupt"):
                future.result(10)
    assert calls == ["acme/a"]


def test_a_request_after_a_failed_load_tries_again(make_pool):
    outcomes = [ValueError("disk was busy"), FakeRunner()]

    def flaky_factory(source, config):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    pool = make_pool(factory=flaky_factory)
    with pytest.raises(ModelLoadFailed, match="disk was busy"):
        pool.acquire("acme/a")
    assert pool.acquire("acme/a").model_id == "acme/a"


def test_aliases_reach_the_model_and_unknown_models_are_forgotten(make_pool, tmp_path):
    catalog = tmp_path / "models.toml"
    catalog.write_text('[models."acme/a"]\nalias = "short"\n')
    pool = make_pool(LLM_MODELS_FILE=str(catalog))
    assert pool.acquire("short").model_id == "acme/a"  # and the alias's id is what is listed
    assert pool.knows("short") and pool.knows("acme/a")
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE=1"):
        pool.acquire("acme/zzz")
    assert not pool.knows("acme/zzz")


def test_with_a_list_longer_than_the_bound_start_loads_the_first_and_readiness_waits_for_them(make_pool):
    pool = make_pool(LLM_ALLOWED_MODELS=",".join(MODELS), LLM_MAX_LOADED_MODELS="2")
    assert pool.startup_models == ["acme/a", "acme/b"]
    assert pool.readiness()[0] is False
    pool.load_all()
    assert pool.readiness() == (True, {"models": ["acme/a", "acme/b"]})
    use(pool, "acme/c")  # loads on demand, unloading acme/a; the worker stays ready
    assert states(pool)["acme/a"] == "not loaded"
    assert pool.readiness()[0] is True


def test_replicas_take_requests_least_busy_first(make_pool):
    from app.engine import GenerationRequest, Sampling, open_stream

    runners: list[FakeRunner] = []

    def factory(source, config):
        runners.append(FakeRunner(tokens=("a",) * 3))
        return runners[-1]

    pool = make_pool(factory, LLM_MODEL_REPLICAS="2")
    model = pool.acquire("acme/a")
    assert len(runners) == 2 and model.config.replicas == 2
    request = GenerationRequest("acme/a", Sampling(max_tokens=3, temperature=0.0, top_p=1.0), prompt="hi")
    first, second = open_stream(model, request), open_stream(model, request)
    assert {first.replica.runner, second.replica.runner} == set(runners)  # one each
    assert model.active_streams == 2
    first.close()
    third = open_stream(model, request)
    assert third.replica is first.replica  # the idle one
    second.close()
    third.close()
    assert model.active_streams == 0 and pool.describe()[0]["engine"]["replicas"] == 2
    pool.release(model)
