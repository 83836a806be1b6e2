#!/usr/bin/env bash
# Everything CI runs: the venv, the system packages the GUI tests need, lint, the napari
# manifest check and the test suite (GUI tests on Xvfb, started by pytest-xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh  # first: the venv holds the Qt plugin whose missing libraries we look up

# Xvfb and the Debian packages of the libraries Qt's xcb plugin cannot find (ldd), or all of
# them when that is unclear: the table is in tests/_napari/qt_libraries.py.
need_apt=$(.venv/bin/python tests/_napari/qt_libraries.py)
# and a C compiler, which builds the shim that kills runs mid-write (tests/faults)
command -v cc >/dev/null || need_apt="$need_apt gcc libc6-dev"
if [ -n "$need_apt" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing with apt-get:" $need_apt
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086  # split into package names
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        $need_apt >/dev/null
fi

.venv/bin/ruff check src tests benchmarks docs
.venv/bin/npe2 validate napari-calcium-avae
exec .venv/bin/python -m pytest "$@"
