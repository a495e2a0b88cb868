#!/usr/bin/env bash
# Save a PNG of the studio window showing a workflow, rendered on a virtual X server (Xvfb).
# Usage: tools/screenshot.sh OUTPUT.png [WORKFLOW.json] [--run] [--command-center]
#   WORKFLOW.json defaults to the first file in resources/examples.
#   --run runs the workflow with its default inputs first, so the picture shows step statuses.
#   --command-center opens the Command Center dock, which shows the first pending human task.
# Needs xvfb-run (Debian: apt-get install xvfb) and the xcb libraries Qt loads
# (libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if [[ $# -lt 1 ]]; then
    echo "usage: $0 OUTPUT.png [WORKFLOW.json] [--run] [--command-center]" >&2
    exit 2
fi
output=$(realpath -m "$1")
shift
workflow=()
run=0
command_center=0
for argument in "$@"; do
    case "$argument" in
        --run) run=1 ;;
        --command-center) command_center=1 ;;
        *) workflow=("$(realpath "$argument")") ;;
    esac
done
if ! command -v xvfb-run >/dev/null; then
    echo "xvfb-run not found. Install it with: apt-get install -y xvfb" >&2
    exit 1
fi

store_dir=$(mktemp -d)
trap 'rm -rf "$store_dir"' EXIT
cd "$root"
# The run uses a throwaway database, so screenshots never touch the user's store.
STUDIO_DATA_DIR="$store_dir" QT_API=pyside6 QT_QPA_PLATFORM=xcb \
    STUDIO_SCREENSHOT="$output" STUDIO_SCREENSHOT_RUN="$run" STUDIO_SHOW_COMMAND_CENTER="$command_center" STUDIO_SCREENSHOT_DELAY_MS="${STUDIO_SCREENSHOT_DELAY_MS:-1500}" \
    timeout 120 xvfb-run -a -s "-screen 0 1600x1000x24" \
    .venv/bin/python -c 'import sys; from studio.app.main import run_gui; sys.exit(run_gui(sys.argv[1:]))' "${workflow[@]}"
if [[ ! -s "$output" ]]; then
    echo "no screenshot was written to $output. See the messages above" >&2
    exit 1
fi
echo "$output"
