#!/usr/bin/env bash
# Installs the tools some tests drive from outside Python (idempotent, fast when
# they are there already): Chromium and the mermaid CLI for the views.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/views.sh
