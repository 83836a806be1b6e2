#!/usr/bin/env bash
# The main job: simulate a small three-type dataset, train the AVAE, apply it, write NWB
# results, print MSE and ARI against PCA and save a figure (demo-output/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/calcium-avae demo -o demo-output "$@"
