#!/usr/bin/env bash
# Create the virtual environment holding nameko 2.14.1 (with its default
# eventlet) for the interoperability tests and the benchmark. nameko never
# enters shimeji's own environment: it runs as separate processes from here.
#
#   bash .ci/nameko-venv.sh         # idempotent; prints the venv's python
#
# The venv goes to $SHIMEJI_NAMEKO_VENV (default: .ci/.nameko-venv in the
# repository). nameko 2.14.1 needs Python 3.11 (eventlet does not run on
# 3.12+): the script uses $NAMEKO_PYTHON, else python3.11, else python3 if it
# is 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SHIMEJI_NAMEKO_VENV:-$PWD/.ci/.nameko-venv}"
NAMEKO_VERSION="2.14.1"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -W ignore -c "
import sys, importlib.metadata as m
import nameko.rpc, nameko.standalone.rpc
sys.exit(m.version('nameko') != '$NAMEKO_VERSION')" >/dev/null 2>&1; then
    echo "$VENV/bin/python"
    exit 0
fi

pick_python() {
    for candidate in "${NAMEKO_PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! PY="$(pick_python)"; then
    echo "nameko-venv.sh: nameko $NAMEKO_VERSION needs Python 3.11; set NAMEKO_PYTHON" >&2
    exit 1
fi

rm -rf "$VENV"
"$PY" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "nameko==$NAMEKO_VERSION" 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
"$VENV/bin/python" -W ignore -c "import nameko.rpc, nameko.standalone.rpc" >&2
echo "$VENV/bin/python"
