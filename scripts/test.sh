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
echo "rdscard: pytest (the redirection hot path compiled)"
.venv/bin/pytest -n 2 --dist loadgroup --timeout 300 -q "$@"
# The same source interpreted: the pure-Python fallback of the compiled modules, through
# the unit tests and the redirection tests with real peers (whole runs only: arguments
# select tests of the first run).
if [ $# -eq 0 ]; then
    echo "rdscard: pytest, pure Python (RDSCARD_PURE_PYTHON=1): unit and redirection tests"
    RDSCARD_PURE_PYTHON=1 exec .venv/bin/pytest -n 2 --dist loadgroup --timeout 300 -q \
        tests/unit tests/integration/redirect
fi
