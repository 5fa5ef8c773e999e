#!/usr/bin/env bash
# The end-to-end demo on the embedded defaults: installs what is missing, then
# runs `rdscard demo` (a server, a virtual screen and the stock xfreerdp
# client connected to it; it reports what the client showed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/rdscard demo "$@"
