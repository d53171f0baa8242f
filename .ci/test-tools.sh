#!/usr/bin/env bash
# Installs and starts what some tests drive from outside Python. Idempotent, and
# fast when everything is there already:
#   - Chromium and the mermaid CLI, for the views (.ci/views.sh);
#   - RabbitMQ, started and awaited (.ci/rabbitmq.sh);
#   - nameko 2.14.1 in a virtualenv of its own, for the interop tests
#     (.ci/nameko-venv.sh; its python is written to .ci/.nameko-python).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/views.sh
bash .ci/rabbitmq.sh
bash .ci/nameko-venv.sh > .ci/.nameko-python
