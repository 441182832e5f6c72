# The two commands of the README:
#   make run    web + scheduler worker on SQLite (demo mode against the simulator without a key)
#   make test   the whole suite: SQLite and PostgreSQL + Redis at once, browser tests included
# Also: make demo (the demo even when .env has a key; PORT=8001 for another port), make user (the first login,
# after migrating; ARGS=--noinput with DJANGO_SUPERUSER_* for scripts), make bench, make lint.
# Every install step lives here, so a fresh machine needs nothing done by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
PG_URL ?= postgres://postgres@127.0.0.1:5432/creditmon
# Parallel test workers (pytest-xdist); worker N uses Redis db (REDIS_TEST_URL's db + N), so keep db + N <= 15.
TEST_WORKERS ?= 3
REDIS_TEST_URL ?= redis://127.0.0.1:6379/12
# How many of the two passes (SQLite, PostgreSQL + Redis) run at once; each has its own databases.
TEST_PASSES ?= 2
PYTEST := $(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadgroup

.PHONY: run demo test test-sqlite test-scaleout setup lint bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

setup: $(VENV)/.installed node_modules/.installed

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "Installing Debian's chromium for the browser tests..."; \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

run: setup
	$(PY) manage.py runapp --host $(HOST) --port $(PORT)

# The demo against the simulated OpenRouter, in its own database, even when .env has a key.
demo: setup
	$(PY) manage.py runapp --demo --host $(HOST) --port $(PORT)
# The first login, on a fresh clone too: set-up and the tables first, then Django's createsuperuser.
.PHONY: user
user: setup
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py createsuperuser $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	STATICFILES_BACKEND=whitenoise.storage.CompressedManifestStaticFilesStorage \
	  $(PY) manage.py collectstatic --noinput -v0 && echo "collectstatic: ok"
	DJANGO_DEBUG=false DJANGO_SECRET_KEY=check-deploy-$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
	  DJANGO_ALLOWED_HOSTS=creditmon.example.com DJANGO_SECURE_SSL_REDIRECT=true DJANGO_HSTS_SECONDS=31536000 \
	  OPENROUTER_API_KEY=placeholder-for-the-deploy-check \
	  $(PY) manage.py check --deploy --fail-level WARNING

test-sqlite: setup chromium
	$(PYTEST)

# The same suite on the scale-out engines (but the backtest, which runs on its own in-memory SQLite whatever
# the engine: see the engine_independent marker). With CI=true a missing server fails the run.
test-scaleout: setup chromium
	@if $(PY) scripts/services_up.py "$(PG_URL)" "$(REDIS_TEST_URL)"; then \
	  DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) $(PYTEST) -m "not engine_independent"; \
	elif [ "$$CI" = "true" ]; then echo "PostgreSQL or Redis unreachable: CI requires both"; exit 1; \
	else echo "SKIPPED the PostgreSQL + Redis run: servers unreachable (see above)"; fi

# Both passes at once (output kept apart, each printed when it ends); TEST_PASSES=1 runs them in turn.
test: lint
	$(MAKE) --no-print-directory --keep-going -j$(TEST_PASSES) --output-sync=target test-sqlite test-scaleout

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) node_modules staticfiles .pytest_cache
