"""LLM_MODELS_FILE: what a valid catalog gives, and one clear line for each kind of mistake."""

from __future__ import annotations

import pytest

from app.catalog_file import CatalogError, load
from app.settings import Settings, SettingsError


def write(tmp_path, text: str, name: str = "models.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_and_yaml_give_the_same_entries(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    (tmp_path / "t.jinja").write_text("{{ messages }}")
    toml = write(
        tmp_path,
        '[models."acme/m"]\nalias = "m"\npath = "m.gguf"\nchat_template = "t.jinja"\n'
        'in_situ_quant = "Q4K"\ndtype = "bf16"\nmax_seqs = 2\nmax_context = 512\n'
        '[models."acme/hubbed"]\nrepo = "acme/other"\nrevision = "v1"\nfiles = ["a.gguf"]\n',
    )
    yaml = write(
        tmp_path,
        "models:\n  acme/m:\n    alias: m\n    path: m.gguf\n    chat_template: t.jinja\n"
        "    in_situ_quant: Q4K\n    dtype: bf16\n    max_seqs: 2\n    max_context: 512\n"
        "  acme/hubbed:\n    repo: acme/other\n    revision: v1\n    files: [a.gguf]\n",
        "models.yaml",
    )
    assert load(toml) == load(yaml)
    entry = load(toml)["acme/m"]
    assert entry.path == tmp_path / "m.gguf"  # relative to the catalog file
    assert entry.chat_template == str(tmp_path / "t.jinja")
    assert (entry.alias, entry.in_situ_quant, entry.dtype, entry.max_seqs, entry.max_context) == (
        "m",
        "Q4K",
        "bf16",
        2,
        512,
    )
    hubbed = load(toml)["acme/hubbed"]
    assert (hubbed.repo, hubbed.revision, hubbed.files) == ("acme/other", "v1", ("a.gguf",))


def test_an_inline_chat_template_is_kept_as_text(tmp_path):
    path = write(
        tmp_path, 'models:\n  acme/m:\n    chat_template: "{% for m in messages %}{% endfor %}"\n', "c.yml"
    )
    assert load(path)["acme/m"].chat_template == "{% for m in messages %}{% endfor %}"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[models."acme/m"]\ndtype = "f8"\n', "entry 'acme/m': dtype: Must be one of"),
        ('[models."acme/m"]\nquantize = "Q4K"\n', "entry 'acme/m': quantize: unknown option"),
        ('[models."acme/m"]\nin_situ_quant = "Q9"\n', "entry 'acme/m': in_situ_quant: Must be one of"),
        ('[models."acme/m"]\nmax_seqs = 0\n', "entry 'acme/m': max_seqs: Must be greater than or equal to 1"),
        ('[models."acme/m"]\nmax_context = "big"\n', "entry 'acme/m': max_context: Not a valid integer"),
        ('[models."acme/m"]\nfiles = ["a.bin"]\n', "entry 'acme/m': files.0: must end in .gguf"),
        ('[models."acme/m"]\nrepo = "nope"\n', "entry 'acme/m': repo: must be ORG/NAME"),
        (
            '[models."acme/m"]\nrepo = "a/b"\npath = "x"\n',
            "entry 'acme/m': give at most one of path and repo",
        ),
        ('[models."acme/m"]\nrevision = "v1"\n', "entry 'acme/m': revision needs repo"),
        ('[models."acme/m"]\npath = "missing.gguf"\n', "entry 'acme/m': path"),
        ('[models."acme/m"]\nchat_template = "none.jinja"\n', "entry 'acme/m': chat_template"),
        ('[models."acme/m"]\nalias = "x"\n[models."acme/n"]\nalias = "x"\n', "entry 'acme/n': the name 'x'"),
        ('[models."acme/m"]\nalias = "acme/n"\n[models."acme/n"]\n', "entry 'acme/n': the name 'acme/n'"),
        ('[models."acme/m"]\n"acme/x" = 1\n', "entry 'acme/m': acme/x: unknown option"),
        ("[models]\n'acme/m' = 3\n", "entry 'acme/m': must be a table of options"),
        ('[models."acme/m"]\npath = "empty"\n', "entry 'acme/m': path"),
        ('[models."acme/m"]\npath = "empty"\nfiles = ["x.gguf"]\n', "entry 'acme/m': files x.gguf not found"),
        ('[models."acme/m"]\nchat_template = "template.txt"\n', "must be a .jinja file"),
        ("[other]\n", "one table 'models'"),
        ("[models\n", "not valid TOML"),
    ],
)
def test_each_mistake_is_one_line_naming_file_entry_and_reason(tmp_path, text, reason):
    (tmp_path / "empty").mkdir()
    (tmp_path / "template.txt").write_text("{{ messages }}")
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and reason in message
    assert "\n" not in message


def test_unreadable_or_unknown_kind_of_file(tmp_path):
    with pytest.raises(CatalogError, match="cannot be read"):
        load(tmp_path / "absent.toml")
    with pytest.raises(CatalogError, match=r"must end in \.toml, \.yaml or \.yml"):
        load(write(tmp_path, "{}", "models.json"))
    with pytest.raises(CatalogError, match="not valid YAML"):
        load(write(tmp_path, "models: [unclosed", "models.yaml"))


def test_settings_read_the_catalog_and_resolve_aliases_in_the_allowed_list(tmp_path):
    path = write(tmp_path, '[models."acme/m"]\nalias = "m"\n')
    settings = Settings.from_env({"LLM_ALLOWED_MODELS": "m,acme/other", "LLM_MODELS_FILE": str(path)})
    assert settings.allowed_models == ("acme/m", "acme/other")
    assert settings.canonical("m") == "acme/m" and settings.canonical("acme/x") == "acme/x"
    bad = write(tmp_path, '[models."acme/m"]\ndtype = 1\n', "bad.toml")
    with pytest.raises(SettingsError, match=rf"^LLM_MODELS_FILE: {bad}: entry 'acme/m': dtype"):
        Settings.from_env({"LLM_ALLOWED_MODELS": "*", "LLM_MODELS_FILE": str(bad)})
