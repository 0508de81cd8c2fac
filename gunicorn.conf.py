"""gunicorn settings and hooks: one gevent worker that loads the models after the fork."""

import sys

from app.settings import Settings, SettingsError

try:
    _settings = Settings.from_env()
except SettingsError as error:
    # One line naming the variable, the value and what is allowed; non-zero exit.
    sys.stderr.write(f"configuration error: {error}\n")
    sys.exit(2)

try:  # the store opens (and its schema migrates) here once, before any worker starts
    from app.store.db import prepare

    prepare(_settings.store).dispose()
except SettingsError as error:
    sys.stderr.write(f"configuration error: {error}\n")
    sys.exit(2)

bind = _settings.bind
workers = 1  # the worker holds the models; scale out with more replicas
worker_class = "app.worker.InferenceWorker"  # gevent, plus the drain and JSON errors
# greenlets are cheap: bursts far over the slot limit get an answer (503), not a full accept queue
worker_connections = max(1000, _settings.max_concurrent_requests * 8)
# Loading a model holds the GIL (no heartbeat meanwhile): the timeout must exceed the longest load.
timeout = _settings.worker_timeout_seconds
# SIGTERM: stop accepting, finish in-flight work, cut what is left just before this bound.
graceful_timeout = _settings.drain_seconds
keepalive = 5
# gunicorn 27's control socket is one path per user: replicas and tests would share it.
control_socket_disable = True
logger_class = "app.observability.gunicorn_logger.StructuredLogger"
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
if _settings.ssl_enabled:
    certfile = str(_settings.tls_cert_path)
    keyfile = str(_settings.tls_key_path)


def post_worker_init(worker):
    """Engine threads do not survive a fork: models load here, in the worker, after patching."""
    from app.observability import engine_logs

    engine_logs.capture()
    services = worker.wsgi.extensions["llm"]
    services.pool.start()
    services.store.work.start(worker.wsgi)  # background responses and batch items
