#!/usr/bin/env bash
# Runs the whole rdscard test suite: lint, type check, unit and integration
# tests. Installs what is missing first (scripts/install.sh). The integration
# tests start their own peers (Xvfb, xfreerdp, pcscd with vpcd, an MIT KDC)
# on loopback, so they need root, as on the CI machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "rdscard: ruff"
.venv/bin/ruff check src tests bench
echo "rdscard: mypy --strict src"
.venv/bin/mypy src
echo "rdscard: pytest"
exec .venv/bin/pytest -n 2 --dist loadgroup --timeout 300 -q "$@"
