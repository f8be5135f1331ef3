# Chorus. `make run` serves the whole thing at http://127.0.0.1:8000; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Websocket messages larger than this are refused by uvicorn itself (close 1009, that socket only);
# the room protocol's own cap is 4 KB, answered with an error frame (docs/security.md).
WS_MAX_SIZE ?= 65536

.PHONY: install run test lint format migrate superuser worker worker-cpu beat web conductor \
        bench bench-api bench-codec bench-lm bench-rooms corpus probe lm clean frontend test-frontend bench-sync

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
run: migrate frontend
	$(BIN)/uvicorn webapp.asgi:application --host $(HOST) --port $(PORT) --ws-max-size $(WS_MAX_SIZE)

# Lint, migrations in step with the models, the front end's unit tests (Vitest), then pytest:
# unit, API, rooms, integration (service mode) and the browser tests (headless Chromium).
test: install frontend
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	cd frontend && npx vitest run
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Static analysis (bandit: fails on any high-severity finding; config in pyproject.toml) and known
# vulnerabilities in the installed dependencies (pip-audit; .ci/pip_audit.py). docs/security.md.
.PHONY: security
security: install
	$(BIN)/bandit -c pyproject.toml -r . -q --severity-level high
	$(BIN)/python .ci/pip_audit.py

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

superuser: migrate
	$(BIN)/python manage.py createsuperuser

# --- Service mode (DATABASE_URL and REDIS_URL set) ------------------------------------------
web: migrate
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/uvicorn webapp.asgi:application --host $(HOST) --port $(PORT) --workers 2 \
		--ws-max-size $(WS_MAX_SIZE)

# One process per GPU, one task at a time (the model lives in the worker child, never CUDA in the parent).
worker: install
	$(BIN)/celery -A webapp worker -Q gpu -c 1 --prefetch-multiplier 1 -n gpu@%h --loglevel INFO

worker-cpu: install
	$(BIN)/celery -A webapp worker -Q default -n cpu@%h --loglevel INFO

beat: install
	$(BIN)/celery -A webapp beat --loglevel INFO

# Keeps live rooms' next chunks generated and closes due rounds; run two, one leads (Redis lock).
conductor: install
	$(BIN)/python manage.py conductor

# --- Benchmarks (print figures; never timed assertions in the unit suite) -------------------
bench: bench-api bench-codec bench-lm bench-rooms

bench-api: install
	@$(BIN)/python -m tests.bench.bench_api --warmup 20

# A live audience room in service mode (uvicorn, a gpu worker with the shipped model, the
# conductor): joins, 2,000 websocket listeners, votes, and how soon a vote is heard. Needs
# PostgreSQL and Redis at 127.0.0.1; the load clients run niced. Prints figures, asserts none.
bench-rooms: install
	@ulimit -n "$$(ulimit -Hn)"; $(BIN)/python -m tests.bench.bench_rooms

# Multi-host test on this machine (root): hosts are network namespaces (PostgreSQL, Redis, two web
# nodes, two gpu workers, the conductor, the load); 1,000 listeners; one worker killed mid-run.
.PHONY: bench-scale soak
bench-scale: install
	@ulimit -n "$$(ulimit -Hn)"; $(BIN)/python -m tests.bench.bench_scale

# One room, 200 clients listening, voting, proposing and reloading for SOAK_MINUTES (30), in
# namespaces like bench-scale: memory growth of every server process, lost chunks, errors.
SOAK_MINUTES ?= 30
soak: install
	@ulimit -n "$$(ulimit -Hn)"; SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/python -m tests.bench.soak

# The shipped codec against Opus on held-out clips. Uses the 20-hour corpus if it was built
# (python -m generation.data build --hours 20 --out var/corpus/full), else builds 3 hours (~1 min).
CORPUS ?= var/corpus/full
bench-codec: install
	@test -f $(CORPUS)/manifest.jsonl || $(BIN)/python -m generation.data build --hours 3 --out $(CORPUS)
	@$(BIN)/python -m generation.eval codec --checkpoint generation/checkpoints/codec-small-v1.pt \
		--manifest $(CORPUS)/manifest.jsonl --clips 24

# The token LM: speed on this machine (rtf, rooms kept at real time, a 10-minute stream) and
# controllability judged by the attribute probe, next to the probe's ceiling on real clips.
bench-lm: install probe
	@$(BIN)/python -m generation.eval lm --probe var/checkpoints/probe.pt \
		--manifest $(CORPUS)/manifest.jsonl

corpus: install
	@test -f $(CORPUS)/manifest.jsonl || $(BIN)/python -m generation.data build --hours 20 --out $(CORPUS)

probe: corpus
	@test -f var/checkpoints/probe.pt || $(BIN)/python -m generation.train probe \
		--manifest $(CORPUS)/manifest.jsonl --out var/checkpoints/probe.pt

# Retrain the shipped LM from scratch (CPU: about 80 minutes; pass DEVICE=cuda on a GPU).
DEVICE ?= cpu
LM_STEPS ?= 4000
lm: corpus
	$(BIN)/python -m generation.train lm --corpus $(CORPUS) --out var/checkpoints/lm-small \
		--preset small --steps $(LM_STEPS) --device $(DEVICE) --resume

clean:
	rm -rf var/media var/staticfiles .pytest_cache .ruff_cache

# --- Front end (frontend/: TypeScript, built by Vite into webapp/static/dist/, gitignored) ----
FRONTEND_SRC := $(shell find frontend/src -type f 2>/dev/null) frontend/vite.config.ts \
                frontend/tsconfig.json frontend/scripts/size.mjs

# `npm install`, not `npm ci`: the registry here serves only this platform's optional packages
# (rollup's and esbuild's native builds), so the lock has no entries for the others and `npm ci`
# refuses it; `npm install` installs exactly the locked versions all the same.
frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && npm install --no-audit --no-fund
	touch $@

# Type-checks, builds, and prints each page's initial JavaScript, gzipped (dist/size.json).
webapp/static/dist/.vite/manifest.json: frontend/node_modules/.installed $(FRONTEND_SRC)
	cd frontend && npm run -s build

frontend: webapp/static/dist/.vite/manifest.json

test-frontend: frontend/node_modules/.installed
	cd frontend && npx vitest run

# Two headless Chromiums in one room: how closely they schedule the same chunk (server time),
# and the largest gap or overlap between consecutive chunks in one. Prints figures, asserts none.
bench-sync: install frontend
	@$(BIN)/python -m tests.bench.bench_sync

# The tuning loop end to end (about 25 min here): a simulated audience with a hidden taste uses
# the real service (>= 5,000 feedback events), one round (labels, critic, DPO), then fresh songs
# before/after judged by that taste through the probe, and the guardrails. Prints figures only.
.PHONY: bench-tuning
bench-tuning: install probe
	@$(BIN)/python -m tests.bench.bench_tuning --probe var/checkpoints/probe.pt \
		--manifest $(CORPUS)/manifest.jsonl

# --- Deployment (deploy/: images, compose, Kubernetes; docs/deploy.md) ----------------------
# Validates the Kubernetes manifests offline against the API's schemas and checks the compose
# file, the image recipe and the storage settings (tests/deploy). No cluster, no docker daemon.
.PHONY: deploy-check
deploy-check: install
	$(BIN)/pytest tests/deploy -q
