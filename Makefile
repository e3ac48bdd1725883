# Everything installs into .venv from the package registries; python3 (3.11+) and make
# are all a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# axe-core (npm) for the accessibility tests, in a git-ignored folder of the project's own.
AXE_VERSION := 4.14.1
AXE_DIR := .cache/axe
AXE_STAMP := $(AXE_DIR)/.installed-$(AXE_VERSION)

.PHONY: install demo test check lint typecheck bench smtp-tools load-tools mail-servers screenshots browser axe clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/newsletter demo

test: $(STAMP)
	@$(MAKE) --no-print-directory axe || echo "warning: no axe-core; the accessibility tests will be skipped" >&2
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP) smtp-tools load-tools
	$(BIN)/python -m benchmarks

# Postfix's smtp-sink and smtp-source, the yardstick of the send benchmark.
smtp-tools:
	@command -v smtp-sink >/dev/null 2>&1 || test -x /usr/sbin/smtp-sink || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix; }

# Debian's wrk, the load generator of the sign-up benchmark.
load-tools:
	@command -v wrk >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

# Debian's Dovecot for the IMAP tests of the return mailbox (root on Debian only); the
# tests start an instance of their own, never the system's.
mail-servers:
	@command -v dovecot >/dev/null 2>&1 || test -x /usr/sbin/dovecot || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd; }

# Debian's chromium for the browser tests and screenshots (root on Debian only).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium fonts-dejavu-core; }

# axe-core for the accessibility tests, from the npm registry (node and npm must be there);
# `make test` goes on without it, and those tests then skip with a reason.
$(AXE_STAMP):
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing: install node and npm first" >&2; exit 1; }
	npm install --prefix $(AXE_DIR) axe-core@$(AXE_VERSION) --no-audit --no-fund --no-save --silent
	touch $(AXE_STAMP)

axe: $(AXE_STAMP)

screenshots: $(STAMP) browser
	$(BIN)/python docs/make_screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(AXE_DIR)
