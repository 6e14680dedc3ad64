#!/usr/bin/env bash
# End-to-end checks of needle-injector over real HTTPS on loopback (see webhook_e2e.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 Tests/e2e/webhook_e2e.py --injector .build/debug/needle-injector
