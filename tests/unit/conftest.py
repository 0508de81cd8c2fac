"""Apps on a fake runner: the real pool, schemas, views and error handling, without model weights."""

from __future__ import annotations

import pytest

from app import create_app
from app.engine import ModelPool
from app.settings import Settings
from tests.helpers import FakeRunner

FAKE_MODEL = "test/fake"


@pytest.fixture
def make_app(tmp_path):
    def build(runner: FakeRunner | None = None, **env: str):
        model_dir = tmp_path / "models" / FAKE_MODEL
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "fake.gguf").write_bytes(b"GGUF")
        settings = Settings.from_env(
            {
                "LLM_ALLOWED_MODELS": FAKE_MODEL,
                "LLM_MODEL_PATH": str(tmp_path / "models"),
                "HF_HOME": str(tmp_path / "hf"),
                "LLM_DATA_DIR": str(tmp_path / "data"),
                "LOG_FORMAT": "pretty",
                "OTEL_SDK_DISABLED": "true",
                **env,
            }
        )
        runner = runner or FakeRunner()
        pool = ModelPool(settings, runner_factory=lambda source, config: runner)
        pool.load_all()
        app = create_app(settings, pool)
        app.config["TESTING"] = True
        return app

    return build


@pytest.fixture
def client(make_app):
    return make_app().test_client()
