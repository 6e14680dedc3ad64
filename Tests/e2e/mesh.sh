#!/usr/bin/env bash
# The whole mesh in network namespaces: needle-controller, needle-init and needle-proxy with discovery,
# balancing and mutual TLS between pods routed through a "node" (mesh_e2e.py); skips without root.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 Tests/e2e/mesh_e2e.py --proxy .build/debug/needle-proxy --init .build/debug/needle-init \
    --controller .build/debug/needle-controller
