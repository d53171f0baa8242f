#!/usr/bin/env bash
# Installs and starts what some tests drive from outside Python. Idempotent, and
# fast when everything is there already:
#   - Chromium and the mermaid CLI, for the views (.ci/views.sh);
#   - RabbitMQ, started and awaited (.ci/rabbitmq.sh);
#   - nameko 2.14.1 in a virtualenv of its own, for the interop tests
#     (.ci/nameko-venv.sh; its python is written to .ci/.nameko-python). It needs
#     Python 3.11; without it, the tests that need nameko skip;
#   - nameko 2.14.1's documentation examples and a virtualenv to run them under
#     shimeji's nameko layer (.ci/nameko-examples.sh; its two lines go to
#     .ci/.nameko-examples); without them, tests/nameko_compat skips.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/views.sh
bash .ci/rabbitmq.sh
if ! bash .ci/nameko-venv.sh > .ci/.nameko-python; then
    # Only the nameko interoperability tests need it: they skip without it
    # (and fail, saying so, where SHIMEJI_REQUIRE_AMQP=1 asks for them).
    : > .ci/.nameko-python
    echo "test-tools.sh: no nameko virtualenv; the nameko interoperability tests will skip" >&2
fi
if ! bash .ci/nameko-examples.sh > .ci/.nameko-examples; then
    : > .ci/.nameko-examples
    echo "test-tools.sh: no nameko examples; tests/nameko_compat will skip" >&2
fi
