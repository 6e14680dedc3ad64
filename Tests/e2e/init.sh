#!/usr/bin/env bash
# needle-init in real network namespaces with real iptables (init_e2e.py); skips without root.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 Tests/e2e/init_e2e.py --init .build/debug/needle-init
