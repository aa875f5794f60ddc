#!/usr/bin/env bash
# Run a command with a Chromium the browser tests (tests/test_web_browser.py) can drive through Playwright:
#
#   bash scripts/with-chromium.sh make test
#   bash scripts/with-chromium.sh .venv/bin/python -m pytest -q tests/test_web_browser.py
#
# Playwright's own browser download (`playwright install`) needs a CDN this project cannot rely on, so the
# tests use Debian's `chromium` instead: installed here when `chromium` is not on PATH (root only:
# apt-get), then
#
#   FLANKWATCH_TEST_CHROMIUM=/usr/bin/chromium
#
# is exported and the command runs (exec: its exit status is this script's). Without it the browser tests
# look for `chromium` on PATH themselves and are skipped when there is none.
set -euo pipefail

say() { echo "with-chromium: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ $# -gt 0 ] || { echo "usage: bash scripts/with-chromium.sh COMMAND [ARGS...]" >&2; exit 2; }

if ! command -v chromium >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "no chromium on PATH and not root: install it with
    sudo apt-get update && sudo apt-get install -y chromium"
    say "no chromium found: installing Debian's chromium (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2 \
        || die "apt-get install chromium failed"
    command -v chromium >/dev/null 2>&1 || die "chromium was installed but is not on PATH"
fi

FLANKWATCH_TEST_CHROMIUM=$(command -v chromium)
export FLANKWATCH_TEST_CHROMIUM
say "$("$FLANKWATCH_TEST_CHROMIUM" --version 2>/dev/null || echo chromium) at $FLANKWATCH_TEST_CHROMIUM"
exec "$@"
