# Chorus. `make run` serves the whole thing at http://127.0.0.1:8000; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test lint format migrate superuser worker worker-cpu beat web \
        bench bench-api bench-codec clean

# The virtualenv is rebuilt when pyproject.toml changes. torch==2.13.0 resolves to the CPU wheel
# that pip finds through its configured find-links on these machines.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

# Embedded default: SQLite, in-memory channel layer, generation in this process. Nothing else to start.
run: migrate
	$(BIN)/uvicorn webapp.asgi:application --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

superuser: migrate
	$(BIN)/python manage.py createsuperuser

# --- Service mode (DATABASE_URL and REDIS_URL set) ------------------------------------------
web: migrate
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/uvicorn webapp.asgi:application --host $(HOST) --port $(PORT) --workers 2

# One process per GPU, one task at a time (the model lives in the worker child, never CUDA in the parent).
worker: install
	$(BIN)/celery -A webapp worker -Q gpu -c 1 --prefetch-multiplier 1 -n gpu@%h --loglevel INFO

worker-cpu: install
	$(BIN)/celery -A webapp worker -Q default -n cpu@%h --loglevel INFO

beat: install
	$(BIN)/celery -A webapp beat --loglevel INFO

# --- Benchmarks (print figures; never timed assertions in the unit suite) -------------------
bench: bench-api bench-codec

bench-api: install
	@$(BIN)/python -m tests.bench.bench_api --warmup 20

# The shipped codec against Opus on held-out clips. Uses the 20-hour corpus if it was built
# (python -m generation.data build --hours 20 --out var/corpus/full), else builds 3 hours (~1 min).
CORPUS ?= var/corpus/full
bench-codec: install
	@test -f $(CORPUS)/manifest.jsonl || $(BIN)/python -m generation.data build --hours 3 --out $(CORPUS)
	@$(BIN)/python -m generation.eval codec --checkpoint generation/checkpoints/codec-small-v1.pt \
		--manifest $(CORPUS)/manifest.jsonl --clips 24

clean:
	rm -rf var/media var/staticfiles .pytest_cache .ruff_cache
