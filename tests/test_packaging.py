"""The napari manifest must be found after a regular (wheel) and an editable install."""

import subprocess
import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_is_found_in_this_editable_install():
    from npe2 import PluginManager

    (ep,) = [e for e in entry_points(group="napari.manifest") if e.name == "napari-calcium-avae"]
    assert ep.value == "napari_calcium_avae:napari.yaml"
    pm = PluginManager()
    pm.discover()
    manifest = pm.get_manifest("napari-calcium-avae")
    assert manifest.contributions.readers and manifest.contributions.writers


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
def test_wheel_ships_the_top_level_manifest(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("napari_calcium_avae-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read("napari_calcium_avae/napari.yaml").decode()
        entry = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
        assert "napari_calcium_avae:napari.yaml" in zf.read(entry).decode()
    assert shipped == (ROOT / "napari.yaml").read_text()
