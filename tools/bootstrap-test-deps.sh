#!/usr/bin/env bash
# Install the third-party programs the end-to-end tests start, at pinned versions:
#   - @modelcontextprotocol/server-everything (npm, package-lock.json) into tests/servers/node_modules
#   - each Python server listed as tests/servers/<name>.txt into its own virtual environment .deps/<name>
#     (their own environments, because a server may need another `mcp` version than the studio)
#   - the local model (llama-cpp-python built from source, and a 253 MB GGUF model) into .deps/llama, by
#     tools/install-local-model.sh, for the slow tests that run a real llm_call on it. The first build took
#     12 minutes on 2 cores shared with other builds (2026-12). The wheel is cached outside the
#     checkout, so another clone on the same machine installs in about a minute.
#     STUDIO_SKIP_LOCAL_MODEL=1 skips it (those tests then fail).
# A stamp of the pin files makes a second run return at once; delete .deps/test-deps.stamp to force a reinstall.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
servers="$root/tests/servers"
deps="$root/.deps"
stamp_file="$deps/test-deps.stamp"
venv_python="$root/.venv/bin/python"

if [ ! -x "$venv_python" ]; then
    echo "error: $venv_python is missing; run tools/bootstrap.sh first" >&2
    exit 1
fi

# A virtual X server for the test that starts the real window (tests/e2e). Installed only where we
# may (root with apt-get, as on CI); elsewhere that test is skipped with a message saying how to get it.
xvfb_packages="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0"
if ! command -v xvfb-run >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing Xvfb for the window test (apt-get)..." >&2
        apt-get update -qq >&2
        # shellcheck disable=SC2086 # the package list is split on purpose
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $xvfb_packages >/dev/null
    else
        echo "note: xvfb-run is missing, so the test that starts the real window is skipped (apt-get install $xvfb_packages)" >&2
    fi
fi

if [ "${STUDIO_SKIP_LOCAL_MODEL:-0}" != 1 ]; then
    if ! "$root/tools/install-local-model.sh"; then
        echo "error: installing the local model failed (see above); fix it, or set STUDIO_SKIP_LOCAL_MODEL=1" \
            "to skip it (the tests that use it then fail)" >&2
        exit 1
    fi
fi

python_version=$("$venv_python" -c 'import sys; print(sys.version)')
stamp=$( (cat "$servers/package.json" "$servers/package-lock.json" "$servers"/*.txt; echo "$python_version") | sha256sum | cut -d' ' -f1)

installed() {
    [ -x "$servers/node_modules/.bin/mcp-server-everything" ] || return 1
    for pins in "$servers"/*.txt; do
        name=$(basename "$pins" .txt)
        [ -x "$deps/$name/bin/$name" ] || return 1
    done
}

if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] && installed; then
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm was not found; install Node.js 20 or later to run the MCP end-to-end tests" >&2
    exit 1
fi

echo "Installing the MCP test servers pinned in tests/servers (first run or changed pins)..." >&2
npm ci --prefix "$servers" --no-audit --no-fund --loglevel=error >&2

mkdir -p "$deps"
for pins in "$servers"/*.txt; do
    name=$(basename "$pins" .txt)
    "$venv_python" -m venv --clear "$deps/$name"
    "$deps/$name/bin/python" -m pip install --quiet --disable-pip-version-check -r "$pins"
    if [ ! -x "$deps/$name/bin/$name" ]; then
        echo "error: installing $pins did not provide the command $deps/$name/bin/$name" >&2
        exit 1
    fi
done

echo "$stamp" > "$stamp_file"
