#!/usr/bin/env bash
# Creates .venv with the package and everything the tests need. Idempotent and fast when
# already done. Used by demo.sh and test.sh; you rarely call it yourself.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

# torch first, pinned here (not in pyproject, which accepts a range): an unpinned torch can
# pull a multi-GB CUDA build. Set TORCH_REQUIREMENT to choose another build or version.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    "${PIP[@]}" install "${TORCH_REQUIREMENT:-torch==2.13.0}" 2>&1 | grep -v "^WARNING: Location" || true
fi
"${PIP[@]}" install -e ".[qt,dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import napari_calcium_avae, torch, pynwb, napari" \
    || { echo "setup failed: see the pip output above" >&2; exit 1; }
