#!/usr/bin/env bash
# Quick start, step 1: install what is needed and bring up the quickstart lab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
.venv/bin/cmlab up topologies/quickstart.yaml
echo "Use it:  .venv/bin/cmlab status   |   remove it:  .venv/bin/cmlab down quickstart"
