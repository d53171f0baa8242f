#!/usr/bin/env bash
# nameko 2.14.1's documentation examples and their tests, and a virtualenv to run
# them in under shimeji's nameko layer (tests/nameko_compat/). Idempotent; prints
# two lines: the examples' folder (nameko's docs/), and the venv's python.
#
# The examples come from nameko's source distribution on PyPI (its docs/
# folder), unpacked under $SHIMEJI_TOOLS (default ~/.cache/shimeji-tools); none
# of it enters this repository. The venv (.ci/.nameko-examples-venv) holds
# shimeji (editable, from here) and what the examples and their tests import:
# mock, moto < 5 and boto3, PyJWT, bcrypt, requests, SQLAlchemy < 2 and
# nameko-sqlalchemy 0.0.1 (without its nameko requirement). nameko itself is
# not installed there: under the layer, `import nameko` is shimeji.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${SHIMEJI_TOOLS:-$HOME/.cache/shimeji-tools}"
SRC="$TOOLS/nameko-2.14.1"
VENV="$PWD/.ci/.nameko-examples-venv"
quiet() { grep -v "^WARNING: Location" >&2 || true; }

if [ ! -f "$SRC/docs/examples/test/test_examples.py" ]; then
    mkdir -p "$TOOLS"
    tmp="$(mktemp -d)"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --no-binary :all: "nameko==2.14.1" -d "$tmp" 2>&1 | quiet
    tar -xzf "$tmp"/nameko-2.14.1.tar.gz -C "$TOOLS" nameko-2.14.1/docs
    rm -rf "$tmp"
fi

if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "
import shimeji.compat.nameko, moto, boto3, jwt, bcrypt, requests, sqlalchemy, nameko_sqlalchemy, mock
" >/dev/null 2>&1; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e . pytest mock \
        "moto[sqs]<5" boto3 "PyJWT<2" bcrypt requests "sqlalchemy<2" 2>&1 | quiet
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        "nameko-sqlalchemy==0.0.1" 2>&1 | quiet
fi
echo "$SRC/docs"
echo "$VENV/bin/python"
