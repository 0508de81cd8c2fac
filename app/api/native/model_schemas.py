"""The answers of GET /api/llms and the probes: models, their source, engine settings and prefix cache."""

from __future__ import annotations

from marshmallow import Schema, fields


class EngineConfigSchema(Schema):
    device = fields.String()
    in_situ_quant = fields.String(allow_none=True)
    dtype = fields.String(metadata={"description": "auto, f32, f16 or bf16."})
    max_seqs = fields.Integer()
    prefix_cache_n = fields.Integer()
    prefix_cache_mb = fields.Integer(metadata={"description": "CPU prefix cache budget per runner; 0: none."})
    chat_template = fields.String(metadata={"description": "model (its own) or catalog."})
    max_context = fields.Integer(allow_none=True, metadata={"description": "Catalog context cap."})
    replicas = fields.Integer(metadata={"description": "Runners of the model (LLM_MODEL_REPLICAS)."})
    reasons = fields.List(fields.String())


class PrefixCacheSchema(Schema):
    budget_mb = fields.Float(metadata={"description": "Trimmed past this (LLM_PREFIX_CACHE_MB, per runner)."})
    estimated_mb = fields.Float(metadata={"description": "KV memory the cache holds (estimated)."})
    entries = fields.Integer(metadata={"description": "Finished sequences cached since the last trim."})
    hits = fields.Integer(metadata={"description": "Requests whose leading messages were cached."})
    misses = fields.Integer(metadata={"description": "Requests with no cached leading messages."})
    trims = fields.Integer(metadata={"description": "Times the cache was emptied to stay in budget."})
    trim_failures = fields.Integer()
    rewarms = fields.Integer(metadata={"description": "Hot prefixes warmed again after trims."})
    rewarms_yielded = fields.Integer(
        metadata={"description": "Warmings stopped early because a client's request came first."}
    )
    hot_prefixes = fields.Integer(metadata={"description": "Recurring system prompts warmed after a trim."})
    trimming = fields.Boolean()


class ModelSourceSchema(Schema):
    origin = fields.String(
        metadata={"description": "catalog, embedded, model_path, hf_cache or hub (downloaded)."}
    )
    format = fields.String(allow_none=True, metadata={"description": "gguf or safetensors."})
    location = fields.String(metadata={"description": "Local directory, or hub repo id before download."})
    files = fields.List(fields.String(), metadata={"description": "The GGUF file(s) loaded."})
    revision = fields.String(allow_none=True, metadata={"description": "Snapshot commit (cache, hub)."})


class QuantizationSchema(Schema):
    weights = fields.String(
        allow_none=True, metadata={"description": "The GGUF file's type (e.g. Q4_K_M), or the dtype."}
    )
    in_situ = fields.String(allow_none=True, metadata={"description": "Quantization applied at load."})


class ModelSchema(Schema):
    id = fields.String()
    alias = fields.String(allow_none=True, metadata={"description": "Catalog alias, usable as `model`."})
    state = fields.String(metadata={"description": "loaded, loading, not loaded or failed."})
    error = fields.String(allow_none=True, metadata={"description": "Why a load failed."})
    source = fields.Nested(ModelSourceSchema, allow_none=True)
    kind = fields.String(
        allow_none=True, metadata={"description": "chat, or embedding (POST /v1/embeddings, /api/embed)."}
    )
    format = fields.String(allow_none=True, metadata={"description": "gguf or safetensors."})
    quantization = fields.Nested(QuantizationSchema, allow_none=True)
    context_length = fields.Integer(allow_none=True)
    device = fields.String(allow_none=True, metadata={"description": "cuda or cpu, once loaded."})
    engine = fields.Nested(EngineConfigSchema, allow_none=True)
    load_seconds = fields.Float(allow_none=True)
    loads = fields.Integer(metadata={"description": "Times loaded since start."})
    unloads = fields.Integer(metadata={"description": "Times unloaded (LLM_MAX_LOADED_MODELS)."})
    recycles = fields.Integer(
        metadata={"description": "Runner created again to free its prefix cache (LLM_MAX_WORKER_MEMORY_MB)."}
    )
    active_streams = fields.Integer(metadata={"description": "Generations running in the engine."})
    prefix_cache = fields.Nested(
        PrefixCacheSchema,
        allow_none=True,
        metadata={"description": "The CPU prefix cache's account (null on CUDA or with the cache off)."},
    )


class LlmsResponseSchema(Schema):
    models = fields.List(fields.Nested(ModelSchema))
    allow_any_model = fields.Boolean(
        metadata={"description": "LLM_ALLOWED_MODELS is `*`: other models load on first request."}
    )
    device = fields.String(metadata={"description": "cuda or cpu."})
    device_reason = fields.String()


class HealthSchema(Schema):
    status = fields.String()
    reason = fields.String()
    models = fields.List(fields.String())
    loading = fields.List(fields.String())
    failed = fields.Dict(keys=fields.String(), values=fields.String())
