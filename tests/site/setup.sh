#!/usr/bin/env bash
# Browser tests' tools: Debian's Chromium and playwright-core (npm) driving it.
# Idempotent and quick when already installed; `npx playwright install` cannot
# work here (no browser downloads), so the system chromium is used.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "tests/site/setup.sh: /usr/bin/chromium is missing and this is not root: install Debian's 'chromium' package" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # the package lists may be absent or stale on a fresh machine
    apt-get install -y --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1 || {
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
    }
fi

if [ ! -f node_modules/playwright-core/package.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi

/usr/bin/chromium --version 2>/dev/null
node -e "console.log('playwright-core ' + require('playwright-core/package.json').version)"
