#!/usr/bin/env bash
# needle-injector's namespace list+watch against a local stand-in for the Kubernetes API (kube_api_e2e.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 Tests/e2e/kube_api_e2e.py --injector .build/debug/needle-injector
