#!/usr/bin/env bash
# Create or refresh the virtual environment .venv from requirements.lock.
# The environment is reused while requirements.lock and pyproject.toml are unchanged.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
stamp_file="$venv/.bootstrap-stamp"

pick_python() {
    for candidate in "${STUDIO_PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
            echo "$candidate"
            return 0
        fi
    done
    echo "error: Python 3.11 was not found. Install it or set STUDIO_PYTHON to a Python 3.11 interpreter." >&2
    return 1
}

stamp=$(cat "$root/requirements.lock" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] && [ -x "$venv/bin/python" ]; then
    exit 0
fi

python=$(pick_python)
echo "Setting up $venv from requirements.lock (first run or changed dependencies)..." >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements.lock"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$root"
echo "$stamp" > "$stamp_file"
