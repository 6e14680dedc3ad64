#!/usr/bin/env bash
# needle-controller's identity service against a local stand-in for the Kubernetes TokenReview API,
# driven with openssl and curl as the README shows (identity_e2e.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 Tests/e2e/identity_e2e.py --controller .build/debug/needle-controller
