"""What the engine cannot do for a request, as facts (numbers, kinds, field names): the engine raises
these and only these; the API (app/fault_errors.py) gives each its status, code and wording for the
request's API family.

A fault's text (`str`) is for logs. The faults of finding and loading a model (ModelNotFound,
DownloadFailed) describe where the engine looked; that text is also the model's error in the model
list and the pull command's output, so the API shows it as it is.
"""

from __future__ import annotations

from typing import Any

# Why the slots refused a request (SlotsBusy.why)
QUEUE_FULL, WAIT_TOO_LONG, QUEUE_TIMEOUT = "queue_full", "wait_too_long", "queue_timeout"


class EngineFault(Exception):
    """Base of every fault the engine raises."""


# -- the request ----------------------------------------------------------------------------------
class ContextTooLong(EngineFault):
    """A prompt (or embedding input `index`) longer than the model's context; `exact`: the count is
    the prompt's own, False when the chat template's tokens are not counted (it is at least that)."""

    def __init__(
        self, prompt_tokens: int, context_length: int, *, exact: bool = True, index: int | None = None
    ) -> None:
        super().__init__(f"{prompt_tokens} prompt tokens > context length {context_length}")
        self.prompt_tokens, self.context_length = prompt_tokens, context_length
        self.exact, self.index = exact, index


class EmptyInput(EngineFault):
    """Embedding input `index` has no tokens."""

    def __init__(self, index: int) -> None:
        super().__init__(f"input {index} is empty")
        self.index = index


class UnknownTokenId(EngineFault):
    """A token id the model's vocabulary does not have: in embedding input `index`, or (index None) in
    the ids given to detokenize."""

    def __init__(self, token_id: int, vocab_size: int, index: int | None = None) -> None:
        super().__init__(f"token id {token_id} >= vocabulary size {vocab_size}")
        self.token_id, self.vocab_size, self.index = token_id, vocab_size, index


class GrammarRefused(EngineFault):
    """The engine refused an output constraint: the client's own, given in field `param`, or (param
    None) the server's (a forced tool call), which is the server's fault."""

    def __init__(self, model: str, param: str | None, engine_text: str) -> None:
        super().__init__(engine_text)
        self.model, self.param, self.engine_text = model, param, engine_text


class WrongModelKind(EngineFault):
    """A model of `kind` asked for what only the other kind does (text from an embedding model, or
    embeddings from a chat model); `embedding_models`: the models that make embeddings."""

    def __init__(self, model: str, kind: str, embedding_models: list[str]) -> None:
        super().__init__(f"model {model} is of kind {kind}")
        self.model, self.kind, self.embedding_models = model, kind, embedding_models


class NoChatTemplate(EngineFault):
    """The model has no chat template: found while `generating` (the engine said so), or while
    rendering messages here (token counts)."""

    def __init__(self, model: str, *, generating: bool) -> None:
        super().__init__(f"model {model} has no chat template")
        self.model, self.generating = model, generating


class TemplateRefused(EngineFault):
    """The model's chat template raised on these messages (its `reason`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RawCannotStream(EngineFault):
    """A raw prompt asked to stream: the engine completes a raw prompt in one call."""

    def __init__(self) -> None:
        super().__init__("a raw prompt cannot stream")


# -- the engine -----------------------------------------------------------------------------------
class EngineBusy(EngineFault):
    """The runner was borrowed by another call ("Already borrowed"); retry after `retry_after` s."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__("the engine is busy")
        self.retry_after = retry_after


class EngineFailed(EngineFault):
    """The engine failed on `model`: its first line of text, or None when the failure was not the
    engine's own (a bug of ours, logged where it happened)."""

    def __init__(self, model: str, first_line: str | None) -> None:
        super().__init__(first_line or "unexpected failure")
        self.model, self.first_line = model, first_line


# -- models ---------------------------------------------------------------------------------------
class ModelNotAllowed(EngineFault):
    """`model` is not among the `allowed` ones."""

    def __init__(self, model: str | None, allowed: list[str]) -> None:
        super().__init__(f"Model '{model}' is not allowed; allowed models: {', '.join(allowed)}")
        self.model, self.allowed = model, allowed


class ModelNotFound(EngineFault):
    """`model` is nowhere the engine looked; `description` says where it looked and what it found,
    `details` the same as data (looked_in, files, missing, ...)."""

    def __init__(self, model: str, description: str, **details: Any) -> None:
        super().__init__(description)
        self.model, self.description = model, description
        self.details: dict[str, Any] = {"model": model, **details}


class DownloadFailed(EngineFault):
    """`model` could not be fetched from `endpoint` (network, disk, HTTP): it may exist."""

    def __init__(self, model: str, revision: str, endpoint: str, reason: str) -> None:
        super().__init__(f"Model '{model}' could not be downloaded from {endpoint}: {reason}")
        self.model, self.revision, self.endpoint, self.reason = model, revision, endpoint, reason


class ModelLoading(EngineFault):
    """`model` is being loaded by the worker's start; retry after `retry_after` s."""

    def __init__(self, model: str, state: str, retry_after: int = 2) -> None:
        super().__init__(f"model {model} is loading")
        self.model, self.state, self.retry_after = model, state, retry_after


class ModelLoadFailed(EngineFault):
    """`model` failed to load, for `reason`."""

    def __init__(self, model: str, state: str, reason: str | None) -> None:
        super().__init__(f"model {model} failed to load: {reason}")
        self.model, self.state, self.reason = model, state, reason


class NoRoomToLoad(EngineFault):
    """`model` cannot load now: `max_loaded_models` are loaded and none is idle; retry after
    `retry_after` s."""

    def __init__(self, model: str, max_loaded_models: int, retry_after: int = 2) -> None:
        super().__init__(f"no room to load {model}: {max_loaded_models} models are busy")
        self.model, self.max_loaded_models, self.retry_after = model, max_loaded_models, retry_after


class ModelBusy(EngineFault):
    """`model` cannot be `action` ("unloaded", "deleted") now: its `state` is loading, or (unloaded)
    `leases` requests use it, or (deleted) it is loaded."""

    def __init__(self, model: str, action: str, state: str, leases: int = 0) -> None:
        super().__init__(f"cannot {action} {model}: {state}, {leases} requests")
        self.model, self.action, self.state, self.leases = model, action, state, leases


class NoHubSource(EngineFault):
    """`model` cannot be pulled from (or deleted from the cache of) the hub, for `why`: LOCAL (a path
    in the catalog), OFFLINE (HF_HUB_OFFLINE) or NOT_HUB_ID (not an ORG/NAME id)."""

    LOCAL, OFFLINE, NOT_HUB_ID = "local", "offline", "not_hub_id"

    def __init__(self, model: str, why: str, where: str = "") -> None:
        super().__init__(f"model {model}: no hub source ({why})")
        self.model, self.why, self.where = model, why, where


# -- slots ----------------------------------------------------------------------------------------
class KeyShareUsed(EngineFault):
    """API key `key` holds or waits for `share` slots, its share (max_concurrent)."""

    def __init__(self, key: str, share: int, retry_after: int) -> None:
        super().__init__(f"key {key!r} holds its share of {share} slots")
        self.key, self.share, self.retry_after = key, share, retry_after
        self.held_by: tuple[str, ...] = ()  # the request ids holding it, when the caller knows them


class SlotsBusy(EngineFault):
    """All `limit` slots are busy and this request will not get one: `why` is QUEUE_FULL (`max_waiting`
    wait already), WAIT_TOO_LONG (the expected wait exceeds what the request may wait) or QUEUE_TIMEOUT
    (none freed within `timeout` s). It would have been number `position` in the queue."""

    def __init__(
        self,
        why: str,
        *,
        limit: int,
        waiting: int,
        position: int,
        estimated_wait: float,
        retry_after: int,
        timeout: float,
        max_waiting: int,
    ) -> None:
        super().__init__(f"all {limit} slots are busy ({why})")
        self.why, self.limit, self.waiting, self.position = why, limit, waiting, position
        self.estimated_wait, self.retry_after = estimated_wait, retry_after
        self.timeout, self.max_waiting = timeout, max_waiting
