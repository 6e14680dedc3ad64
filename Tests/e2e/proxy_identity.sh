#!/usr/bin/env bash
# needle-proxy getting its identity from needle-controller in network namespaces (proxy_identity_e2e.py);
# skips without root.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 Tests/e2e/proxy_identity_e2e.py --proxy .build/debug/needle-proxy --init .build/debug/needle-init \
    --controller .build/debug/needle-controller
