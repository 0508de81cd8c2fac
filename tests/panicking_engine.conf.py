"""gunicorn settings for the engine-panic tests: the real configuration, with every runner wrapped so
that a marker in a prompt makes the real engine panic (a request it cannot take, sent for real) at
submission or after a few tokens. Fault injection for integration tests only."""

from pathlib import Path

exec((Path(__file__).resolve().parent.parent / "gunicorn.conf.py").read_text())

PANIC_AT_SUBMIT, PANIC_MID_STREAM = "PANIC-AT-SUBMIT", "PANIC-MID-STREAM"
_serving_init = post_worker_init  # noqa: F821 - defined by the configuration above


class PanickingRunner:
    """The real runner; a marked request meets the engine's own panic (a message without content)."""

    def __init__(self, runner):
        self._runner = runner

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def _panic(self):
        import mistralrs

        request = mistralrs.ChatCompletionRequest(model="x", messages=[{"role": "user"}], max_tokens=1)
        return self._runner.send_chat_completion_request(request)  # raises pyo3's PanicException

    def send_chat_completion_request(self, request):
        text = _MARKED.pop(id(request), "")
        if PANIC_AT_SUBMIT in text:
            return self._panic()
        stream = self._runner.send_chat_completion_request(request)
        return self._panicking(stream) if PANIC_MID_STREAM in text else stream

    def _panicking(self, stream):
        for count, chunk in enumerate(stream):
            if count == 3:
                self._panic()
            yield chunk


_MARKED: dict[int, str] = {}  # engine request id -> its prompt text (the engine's object hides it)


def _marking(build):
    def to_engine_chat_request(request):
        engine_request = build(request)
        _MARKED[id(engine_request)] = str(request.chat_messages())
        return engine_request

    return to_engine_chat_request


def post_worker_init(worker):
    from app.engine import generation

    generation.to_engine_chat_request = _marking(generation.to_engine_chat_request)
    pool = worker.wsgi.extensions["llm"].pool
    create = pool.loader.runner_factory
    pool.loader.runner_factory = lambda source, config: PanickingRunner(create(source, config))
    _serving_init(worker)
