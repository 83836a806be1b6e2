#!/usr/bin/env bash
# Everything CI runs: system packages for a virtual display, the venv, lint, the napari
# manifest check and the test suite (GUI tests on Xvfb, started by pytest-xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v Xvfb >/dev/null || need_apt+=(xvfb)
for lib in libGL.so.1 libEGL.so.1 libxkbcommon-x11.so.0 libxcb-cursor.so.0 libdbus-1.so.3 libfontconfig.so.1; do
    ldconfig -p | grep -q "$lib" || need_apt+=(libgl1 libegl1 libxkbcommon-x11-0 libxcb-icccm4
        libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0
        libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1)
done
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        $(printf '%s\n' "${need_apt[@]}" | sort -u) >/dev/null
fi

bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks docs
.venv/bin/npe2 validate napari-calcium-avae
exec .venv/bin/python -m pytest "$@"
