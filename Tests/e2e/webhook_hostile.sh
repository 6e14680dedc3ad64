#!/usr/bin/env bash
# needle-injector under hostile input over real HTTPS on loopback (webhook_hostile_e2e.py): deep nesting, a
# 3.9 MiB review, duplicate keys, bad UTF-8, odd numbers and wrong types, stalled TLS handshakes, memory and
# descriptors over 1,000 keep-alive reviews, pipelined requests, and null or missing lists in the pod.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 Tests/e2e/webhook_hostile_e2e.py --injector .build/debug/needle-injector
