#!/usr/bin/env bash
# needle-proxy under hostile clients and misbehaving apps (proxy_hostile_e2e.py); skips without root.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 Tests/e2e/proxy_hostile_e2e.py --proxy .build/debug/needle-proxy --init .build/debug/needle-init
