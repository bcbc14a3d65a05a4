# The two set-up commands: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 5000
BIN = $(VENV)/bin
FLASK = $(BIN)/flask --app mailer

.PHONY: run test lint bench bench-deps install install-test translations system-test-deps migration clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements-test.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed translations

install-test: $(VENV)/.installed-test translations

# Catalogs are kept per area: translations/<area>/<lang>/LC_MESSAGES/messages.po
translations: $(VENV)/.installed
	@for dir in translations/*/; do $(BIN)/pybabel compile -d "$$dir" 2>&1 | grep -v "^compiling" || true; done

## make run: the web app, a Celery worker and beat on http://127.0.0.1:$(PORT), embedded by default.
run: install
	$(FLASK) db upgrade
	$(FLASK) demo
	@# honcho gives each process its own PORT: the links in mail are the web's (BASE_URL)
	@# Ctrl-C: honcho stops every process and exits 130; that is the normal way to stop, not an error
	BASE_URL=$${BASE_URL:-http://127.0.0.1:$(PORT)} PORT=$(PORT) $(BIN)/honcho start -f Procfile -p $(PORT) \
	  || test $$? -eq 130

## make lint: ruff and mypy over the application (settings in pyproject.toml).
lint: install-test
	$(BIN)/ruff check mailer worker config.py
	$(BIN)/mypy

## make test: the whole suite on PostgreSQL and SQLite, with Redis, aiosmtpd, Celery and Chromium.
test: install-test system-test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian's Chromium drives the browser tests (Playwright's own download does not work here);
# Debian's Dovecot is the IMAP server the bounce-mailbox tests start (each its own instance).
system-test-deps:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Debian's chromium package (sudo apt-get install chromium)"; exit 1; fi; }
	@test -x /usr/sbin/dovecot || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null; \
	  else echo "Install Debian's dovecot-imapd package (sudo apt-get install dovecot-imapd)"; exit 1; fi; }

## make bench: sending throughput against a same-run baseline (see bench/README).
bench: install-test bench-deps
	$(BIN)/python -m bench $(BENCH_ARGS)

# Postfix's smtp-sink receives the benchmark's mail (aiosmtpd would be the bottleneck); wrk
# loads the public sign-up form (bench/signups.py).
bench-deps:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "Install Debian's wrk package (sudo apt-get install wrk)"; exit 1; fi; }
	@test -x /usr/sbin/smtp-sink || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null; \
	  else echo "Install Debian's postfix package (it ships /usr/sbin/smtp-sink)"; exit 1; fi; }

## make migration m="what changed": a new Alembic revision from the models.
migration: install
	$(FLASK) db migrate -m "$(m)"

clean:
	rm -rf $(VENV) instance .pytest_cache
