"""The system libraries Qt's xcb platform plugin lacks here, and the Debian packages for them.

scripts/test.sh runs this file to learn what to apt-get; conftest.py imports it to name what is
missing when Qt cannot start. Neither imports Qt: a plugin that cannot load aborts the process.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

# What the xcb plugin and its GL integrations link (ldd, Qt 6) beyond the always-installed C
# and C++ runtimes, by Debian 12 package; xinerama and xinput for other Qt builds. A missing
# library that is not here means the table is out of date: every package is installed then.
PACKAGES = {
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libOpenGL.so.0": "libopengl0",
    "libEGL.so.1": "libegl1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libpng16.so.16": "libpng16-16",
    "libexpat.so.1": "libexpat1",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libpcre2-8.so.0": "libpcre2-8-0",
    "libzstd.so.1": "libzstd1",
}
BINDINGS = ("PyQt6", "PySide6", "PyQt5", "PySide2")


def xcb_plugins() -> list[Path]:
    """The xcb platform plugin and its GL integrations in every installed Qt binding."""
    plugins: list[Path] = []
    for name in BINDINGS:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(spec.submodule_search_locations[0])  # e.g. PyQt6/, with Qt6/plugins/
        plugins += sorted(root.glob("*/plugins/platforms/libqxcb.so"))
        plugins += sorted(root.glob("*/plugins/xcbglintegrations/*.so"))
    return plugins


def missing_libraries() -> list[str] | None:
    """Sonames the dynamic loader cannot find for those plugins (ldd); None if there is none."""
    plugins = xcb_plugins()
    if not plugins or shutil.which("ldd") is None:
        return None
    ldd = subprocess.run(["ldd", *map(str, plugins)], capture_output=True, text=True, check=False)
    return sorted({line.split()[0] for line in ldd.stdout.splitlines() if "=> not found" in line})


def packages_to_install() -> list[str]:
    """Debian packages the GUI tests need and lack: those of the missing libraries and Xvfb."""
    missing = missing_libraries()
    if missing is None or not set(missing) <= PACKAGES.keys():
        needed = set(PACKAGES.values())
    else:
        needed = {PACKAGES[soname] for soname in missing}
    if shutil.which("Xvfb") is None:
        needed.add("xvfb")  # the virtual display pytest-xvfb starts
    return sorted(needed)


if __name__ == "__main__":
    print(*packages_to_install(), sep="\n")
