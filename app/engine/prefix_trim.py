"""Trimming a runner's prefix cache on CPU without pausing the worker, and warming it again.

The trim is one engine request with two identical choices: their prompts are prefilled as one batch
of equal length, which the engine fails on CPU (its quantized lm_head gets a non-contiguous input),
and the engine's step-error path empties the whole prefix cache (`evict_all_caches`). That path also
resets the model's own KV state, which corrupts any sequence decoding at that moment, so a trim runs
only on an idle runner, holding its prefill gate: past the budget, when the last generation leaves;
past twice the budget, new prompts wait at the gate while the running streams finish. Measured
(bench/trim_ways.py): about 0.25 s, the GIL never held longer than 5 ms, no load.

The other ways the engine offers are worse or impossible: a second runner
loaded in the background holds the GIL for the whole load (1.2 s with the embedded model: every
request and probe stalls), and `unload_model`/`reload_model` refuse a GGUF model ("has no loader
configuration").

Then each hot head (a recurring system prompt with its tools) is sent again with a one-token answer,
so that the next user who sends it finds it cached. A warm holds the prefill gate for its prompt's
prefill (seconds, for a long system prompt on CPU), so it yields to clients: a head is warmed only
while no request is on the runner, and warming stops as soon as one comes (its own prefill caches the
head it sends); the heads not warmed wait for the next trim.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from app.engine.mapping import to_engine_chat_request
from app.engine.offload import run_blocking, spawn_background
from app.engine.prefix_cache import PrefixCacheAccount
from app.engine.types import GenerationRequest, Sampling

logger = logging.getLogger(__name__)

HARD_FACTOR = 2  # past this many budgets, admissions pause until the runner is idle, then it trims
_FAILED_BATCH = "not contiguous"  # the engine's refusal of the batched prefill: the cache was emptied
_WARM = Sampling(max_tokens=1, temperature=0.0, top_p=1.0)


def after_generation(model: Any, replica: Any, open_stream: Callable[..., Any]) -> None:
    """Called when a generation has left the replica: past the budget, trim in the background once
    the runner is idle; past twice the budget, also stop admitting prompts until it is."""
    account: PrefixCacheAccount | None = replica.prefix_cache
    if account is None or not account.over_budget or account.trimming or not account.trim_works:
        return
    hard = account.held_bytes > HARD_FACTOR * account.budget_bytes
    if replica.running > 0 and not hard:
        return  # the next generation to leave an idle runner trims
    account.trimming = True
    spawn_background(lambda: _trim_then_warm(model, replica, account, open_stream, hard))


def _trim_then_warm(
    model: Any, replica: Any, account: PrefixCacheAccount, open_stream: Callable, hard: bool
) -> None:
    try:
        before = account.held_bytes
        replica.enter_gate()  # no prompt enters prefill from here: none shares the failing batch
        try:
            if replica.running > 0:
                if not hard:  # a request came in meanwhile: the next idle moment trims
                    return
                replica.wait_idle()  # past twice the budget: the streams finish, new prompts wait
            trimmed = trim(model, replica)
        finally:
            replica.leave_gate()
        if trimmed:
            logger.info(
                "model %s: prefix cache trimmed at about %d MB (budget %d MB, LLM_PREFIX_CACHE_MB)",
                model.model_id,
                before // (1024 * 1024),
                account.budget_bytes // (1024 * 1024),
            )
            warm(model, replica, open_stream)
    except Exception:  # a trim is housekeeping: it never fails a request, and the next one retries
        account.trim_failures += 1
        logger.exception("model %s: prefix cache trim failed", model.model_id)
    finally:
        account.trimming = False


def trim(model: Any, replica: Any) -> bool:
    """Empty the replica's prefix cache in the engine; True when it did. The caller holds the gate
    and the runner is idle: the engine's step-error path also resets the model's own KV state, which
    would corrupt a sequence decoding at the time (measured: concurrent greedy streams diverged)."""
    account: PrefixCacheAccount = replica.prefix_cache
    nonce = uuid.uuid4().hex
    request = GenerationRequest(
        model=model.model_id,
        sampling=Sampling(max_tokens=1, temperature=0.0, top_p=1.0),
        messages=({"role": "user", "content": f"cache trim {nonce}: one two three four five"},),
    )
    engine_request = to_engine_chat_request(request, n_choices=2)
    iterator = replica.call(replica.runner.send_chat_completion_request, engine_request)
    error = run_blocking(_drain, iterator)
    if error is not None and _FAILED_BATCH in error:
        account.cleared()
        account.trims += 1
        return True
    account.trim_failures += 1
    if error is None:  # the engine ran the batch: this build cannot be trimmed this way
        account.trim_works = False
        logger.warning(
            "model %s: the engine ran the trim batch instead of failing it, so its prefix cache "
            "cannot be trimmed on this build; LLM_MAX_WORKER_MEMORY_MB recycles it when idle",
            model.model_id,
        )
    else:
        logger.warning("model %s: prefix cache trim: unexpected engine error: %s", model.model_id, error)
    return False


def _drain(iterator: Any) -> str | None:
    """Read a stream to its end on a pool thread: the engine's error text, or None."""
    try:
        for _ in iterator:
            pass
    except (ValueError, RuntimeError) as error:
        return str(error)
    return None


def warm(model: Any, replica: Any, open_stream: Callable[..., Any]) -> None:
    """Send each hot head again (a one-token answer) so that the engine caches it, while no client's
    request is on the runner (taken: waiting at the gate or generating)."""
    account: PrefixCacheAccount = replica.prefix_cache
    for head in account.hot_heads():
        if replica.active_streams > 0:  # a client came: it goes first
            logger.info("model %s: prefix cache warming yielded to a request", model.model_id)
            account.warms_yielded += 1
            return
        request = GenerationRequest(
            model=model.model_id,
            sampling=_WARM,
            messages=(*head.messages, {"role": "user", "content": "Hello"}),
            tools=head.tools,
        )
        stream = open_stream(model, request, replica=replica, count=False)
        try:
            for _ in stream:
                pass
        finally:
            stream.close()
        account.rewarms += 1
