#!/usr/bin/env bash
# Quick start, step 2 (and CI's test command): install what is needed, then run
# the whole suite, end-to-end tests on real containers included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
t0=$(date +%s)
set +e
.venv/bin/pytest -ra -n "${CMLAB_WORKERS:-2}" --dist loadscope "$@"
rc=$?
set -e
echo "ci/test.sh: pytest exit $rc in $(( $(date +%s) - t0 )) s"
exit $rc
