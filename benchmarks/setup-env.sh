#!/usr/bin/env bash
# Create the benchmark's own virtualenv (benchmarks/.venv, git-ignored): drivetrain from this
# checkout with its MySQL extras, plus the peers it is compared with (dlt, connectorx).
# The MariaDB server and client come from Debian: sudo scripts/install-test-servers
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
"$python" -m venv "$here/.venv"
"$here/.venv/bin/pip" install --quiet --upgrade pip
"$here/.venv/bin/pip" install --quiet -e "$here/..[mysql]" -r "$here/requirements.txt"
"$here/.venv/bin/python" -c "import drivetrain, connectorx, dlt; print('benchmark environment ready:', dlt.__version__)"
