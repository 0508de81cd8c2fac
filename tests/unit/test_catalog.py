"""Model resolution: embedded entry, LLM_MODEL_PATH tree, Hugging Face cache layout, hub, offline."""

from __future__ import annotations

import pytest

from app.engine.catalog import embedded_model_file, resolve
from app.engine.faults import ModelNotFound
from app.settings import EMBEDDED_MODEL_ID, Settings


def settings(tmp_path, **env):
    return Settings.from_env({"LLM_ALLOWED_MODELS": "*", "HF_HOME": str(tmp_path / "hf"), **env})


def test_embedded_model_comes_from_its_package(tmp_path):
    source = resolve(EMBEDDED_MODEL_ID, settings(tmp_path))
    assert (source.origin, source.format) == ("embedded", "gguf")
    assert source.filenames == (embedded_model_file().name,)


def test_model_path_directory_named_by_the_id_holds_a_gguf(tmp_path):
    model_dir = tmp_path / "models" / "acme" / "tiny"
    model_dir.mkdir(parents=True)
    (model_dir / "tiny.Q8_0.gguf").write_bytes(b"GGUF")
    source = resolve("acme/tiny", settings(tmp_path, LLM_MODEL_PATH=str(tmp_path / "models")))
    assert (source.origin, source.format, source.location) == ("model_path", "gguf", str(model_dir))
    assert source.filenames == ("tiny.Q8_0.gguf",)


def test_model_path_directory_with_safetensors_layout(tmp_path):
    model_dir = tmp_path / "models" / "acme" / "plain"
    model_dir.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (model_dir / name).write_text("{}")
    source = resolve("acme/plain", settings(tmp_path, LLM_MODEL_PATH=str(tmp_path / "models")))
    assert (source.origin, source.format, source.location) == ("model_path", "safetensors", str(model_dir))


def test_several_unrelated_ggufs_are_ambiguous(tmp_path):
    model_dir = tmp_path / "models" / "acme" / "two"
    model_dir.mkdir(parents=True)
    for name in ("a.gguf", "b.gguf"):
        (model_dir / name).write_bytes(b"GGUF")
    with pytest.raises(ModelNotFound, match="several GGUF files"):
        resolve("acme/two", settings(tmp_path, LLM_MODEL_PATH=str(tmp_path / "models")))


def test_hf_cache_snapshot_from_refs_main(tmp_path):
    repo = tmp_path / "hf" / "hub" / "models--acme--cached"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123\n")
    old = repo / "snapshots" / "old000"
    old.mkdir(parents=True)
    (old / "old.gguf").write_bytes(b"GGUF")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model.Q4_K_M.gguf").write_bytes(b"GGUF")
    source = resolve("acme/cached", settings(tmp_path))
    assert (source.origin, source.location) == ("hf_cache", str(snapshot))
    assert source.filenames == ("model.Q4_K_M.gguf",)


def test_model_path_wins_over_the_cache(tmp_path):
    (tmp_path / "models" / "acme" / "both").mkdir(parents=True)
    (tmp_path / "models" / "acme" / "both" / "m.gguf").write_bytes(b"GGUF")
    cached = tmp_path / "hf" / "hub" / "models--acme--both" / "snapshots" / "r1"
    cached.mkdir(parents=True)
    (cached / "m.gguf").write_bytes(b"GGUF")
    source = resolve("acme/both", settings(tmp_path, LLM_MODEL_PATH=str(tmp_path / "models")))
    assert source.origin == "model_path"


def test_unknown_model_falls_through_to_the_hub(tmp_path):
    source = resolve("acme/remote", settings(tmp_path))
    assert (source.origin, source.location) == ("hub", "acme/remote")


def test_offline_error_names_every_place_looked_in(tmp_path):
    env = {"LLM_MODEL_PATH": str(tmp_path / "models"), "HF_HUB_OFFLINE": "1"}
    with pytest.raises(ModelNotFound) as caught:
        resolve("acme/missing", settings(tmp_path, **env))
    message = caught.value.description
    assert str(tmp_path / "models" / "acme" / "missing") in message
    assert "models--acme--missing" in message
    assert "HF_HUB_OFFLINE=1" in message
    assert len(caught.value.details["looked_in"]) == 3


def test_the_shards_of_one_gguf_model_count_once(tmp_path):
    model_dir = tmp_path / "models" / "acme" / "big"
    model_dir.mkdir(parents=True)
    for name in ("big-Q4_K_M-00001-of-00002.gguf", "big-Q4_K_M-00002-of-00002.gguf"):
        (model_dir / name).write_bytes(b"GGUF")
    source = resolve("acme/big", settings(tmp_path, LLM_MODEL_PATH=str(tmp_path / "models")))
    assert len(source.filenames) == 2
    (model_dir / "big-Q8_0-00001-of-00002.gguf").write_bytes(b"GGUF")  # a second quantization
    with pytest.raises(ModelNotFound, match="several GGUF files"):
        resolve("acme/big", settings(tmp_path, LLM_MODEL_PATH=str(tmp_path / "models")))


def test_a_catalog_entry_comes_first_and_its_repo_stands_in_for_the_id(tmp_path):
    (tmp_path / "models" / "acme" / "real").mkdir(parents=True)
    (tmp_path / "models" / "acme" / "real" / "r.gguf").write_bytes(b"GGUF")
    (tmp_path / "elsewhere.gguf").write_bytes(b"GGUF")
    catalog = tmp_path / "models.toml"
    catalog.write_text(
        '[models."acme/local"]\npath = "elsewhere.gguf"\n[models."acme/alias"]\nrepo = "acme/real"\n'
    )
    env = {"LLM_MODEL_PATH": str(tmp_path / "models"), "LLM_MODELS_FILE": str(catalog)}
    local = resolve("acme/local", settings(tmp_path, **env))
    assert (local.origin, local.location, local.filenames) == ("catalog", str(tmp_path), ("elsewhere.gguf",))
    indirect = resolve("acme/alias", settings(tmp_path, **env))
    assert (indirect.origin, indirect.location) == ("model_path", str(tmp_path / "models" / "acme" / "real"))
