"""A tiny random-weight Qwen3 embedding model (sentence-transformers layout) for mistralrs in tests.

`build_tiny_embedding(dir)` writes a model that

    mistralrs.Runner(which=mistralrs.Which.Embedding(model_id=str(dir),
                                                     arch=mistralrs.EmbeddingArchitecture.Qwen3Embedding),
                     token_source="none")

loads offline in well under a second on CPU, and that answers `send_embedding_request` with one
`EMBEDDING_DIM`-float, L2-normalised vector per input.

- Layout is Qwen/Qwen3-Embedding-0.6B's: a Qwen3 decoder whose tensors have no `model.` prefix
  (`embed_tokens.weight`, `layers.N....`, `norm.weight`), a `modules.json` listing Transformer ->
  Pooling (last token, `1_Pooling/config.json`) -> Normalize, and `config_sentence_transformers.json`.
  mistralrs requires `modules.json` for embedding models.
- The tokenizer is `tests.tiny_models`' merge-free byte-level BPE (one token per byte, token id == byte
  value, ids 0..255; special tokens 256..259), with no post-processor: text input and the token ids of its
  bytes (`EmbeddingRequest(input=[list(b"hello")])`) give the same vector.
- Weights are scaled so that every token of the input visibly moves the (last-token) embedding.
- `MAX_POSITIONS` (512) is the engine's max sequence length: longer input is rejected unless the request
  sets `truncate_sequence=True` (then the end is cut).
- Same seed, same bytes: every file is a pure function of `seed`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from tests.tiny_models import EOS, N_BYTES, SPECIAL_TOKENS, VOCAB_SIZE, write_json, write_tokenizer

HIDDEN = 256
EMBEDDING_DIM = HIDDEN
INTERMEDIATE = 512
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
MAX_POSITIONS = 512


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def normal(rows: int, cols: int, std: float) -> np.ndarray:
        return rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(std)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    def proj(rows: int, cols: int) -> np.ndarray:
        return normal(rows, cols, cols**-0.5)

    tensors = {"embed_tokens.weight": normal(VOCAB_SIZE, HIDDEN, 1.0)}
    for n in range(LAYERS):
        p = f"layers.{n}."
        tensors[p + "self_attn.q_proj.weight"] = proj(HEADS * HEAD_DIM, HIDDEN)
        tensors[p + "self_attn.k_proj.weight"] = proj(KV_HEADS * HEAD_DIM, HIDDEN)
        tensors[p + "self_attn.v_proj.weight"] = proj(KV_HEADS * HEAD_DIM, HIDDEN)
        tensors[p + "self_attn.o_proj.weight"] = proj(HIDDEN, HEADS * HEAD_DIM)
        tensors[p + "self_attn.q_norm.weight"] = ones(HEAD_DIM)
        tensors[p + "self_attn.k_norm.weight"] = ones(HEAD_DIM)
        tensors[p + "mlp.gate_proj.weight"] = proj(INTERMEDIATE, HIDDEN)
        tensors[p + "mlp.up_proj.weight"] = proj(INTERMEDIATE, HIDDEN)
        tensors[p + "mlp.down_proj.weight"] = proj(HIDDEN, INTERMEDIATE)
        tensors[p + "input_layernorm.weight"] = ones(HIDDEN)
        tensors[p + "post_attention_layernorm.weight"] = ones(HIDDEN)
    tensors["norm.weight"] = ones(HIDDEN)
    return tensors


def build_tiny_embedding(path: Path, seed: int = 0) -> Path:
    """Write config.json, model.safetensors (random weights), tokenizer.json, tokenizer_config.json,
    modules.json, 1_Pooling/config.json, config_sentence_transformers.json into `path`; return it."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    eos_id = N_BYTES + SPECIAL_TOKENS.index(EOS)
    write_json(
        directory / "config.json",
        {
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "vocab_size": VOCAB_SIZE,
            "hidden_size": HIDDEN,
            "intermediate_size": INTERMEDIATE,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS,
            "head_dim": HEAD_DIM,
            "hidden_act": "silu",
            "max_position_embeddings": MAX_POSITIONS,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "rope_scaling": None,
            "attention_bias": False,
            "attention_dropout": 0.0,
            "sliding_window": None,
            "use_sliding_window": False,
            "max_window_layers": LAYERS,
            "tie_word_embeddings": False,
            "bos_token_id": eos_id,
            "eos_token_id": eos_id,
            "torch_dtype": "float32",
            "use_cache": True,
        },
    )
    write_tokenizer(directory, MAX_POSITIONS, eos_token=EOS, bos_token=None, padding_side="left")
    write_json(
        directory / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    write_json(
        directory / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": HIDDEN,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": False,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": True,
            "include_prompt": True,
        },
    )
    (directory / "2_Normalize").mkdir(exist_ok=True)
    write_json(
        directory / "config_sentence_transformers.json",
        {"prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )
    save_file(_weights(seed), str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory
