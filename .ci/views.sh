#!/usr/bin/env bash
# Installs what the views tests need, on a fresh Debian machine that has Python:
#   - Chromium, from Debian (the html view is tested in it, and it renders mermaid);
#   - the mermaid CLI (mmdc), from npm, into a cache outside the work tree, using
#     Debian's Chromium (PUPPETEER_SKIP_DOWNLOAD=1: puppeteer downloads no browser).
# Idempotent: when both are there already it only checks, in well under a second.
#
#   bash .ci/views.sh            # then: pytest
#
# The mermaid CLI goes to $SHIMEJI_TOOLS/mermaid-cli (default ~/.cache/shimeji-tools),
# where tests/views/tools.py looks for it.
set -euo pipefail

MERMAID_CLI_VERSION="11.17.0"   # 11.x runs on Node 18.19+ / 20; 12.x needs Node 22
tools="${SHIMEJI_TOOLS:-$HOME/.cache/shimeji-tools}"
mmdc_dir="$tools/mermaid-cli"

say() { echo "views.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# -- Chromium -------------------------------------------------------------------------
if command -v chromium >/dev/null 2>&1; then
    say "chromium: $(command -v chromium)"
else
    say "installing chromium (Debian package)"
    apt_install chromium
fi

# -- Node.js and npm (present on the project's machines; Debian's as a fallback) -------
if ! command -v npm >/dev/null 2>&1; then
    say "installing nodejs and npm (Debian packages)"
    apt_install nodejs npm
fi

# -- the mermaid CLI ------------------------------------------------------------------------
if [ -x "$mmdc_dir/node_modules/.bin/mmdc" ] \
        && [ "$(cat "$mmdc_dir/.version" 2>/dev/null)" = "$MERMAID_CLI_VERSION" ]; then
    say "mermaid CLI $MERMAID_CLI_VERSION: $mmdc_dir/node_modules/.bin/mmdc"
else
    say "installing the mermaid CLI $MERMAID_CLI_VERSION into $mmdc_dir"
    rm -rf "$mmdc_dir"
    mkdir -p "$mmdc_dir"
    (
        cd "$mmdc_dir"
        echo '{"name": "shimeji-view-tools", "private": true}' > package.json
        PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error \
            "@mermaid-js/mermaid-cli@$MERMAID_CLI_VERSION"
    )
    echo "$MERMAID_CLI_VERSION" > "$mmdc_dir/.version"
fi
