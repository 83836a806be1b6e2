"""napari sample data: a small simulated culture of each type, read through our reader.

Three cultures (RS, IB, CH) of 30 imaged neurons, 20 s at 30 Hz, on 1.5 mm dishes (a
quarter of the paper's, about 560 neurons each, same density): big enough to train and
cluster in the GUI, small enough to appear within seconds. Files go to a fresh temp
folder that outlives the call, because the layers point at them for saving results; it is
removed when Python exits, so repeated samples do not pile up.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from ..simulate.settings import SimulationSettings
from ._layers import LayerData
from ._placement import right_edge, side_by_side
from .reader import layers_from_file

SAMPLE = SimulationSettings(
    cultures_per_type=1,
    neurons_per_culture=30,
    duration_s=20.0,
    frame_rate=30.0,
    dish_size_mm=1.5,
)


def simulate_sample(output_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write the sample sessions (one per type) into ``output_dir``."""
    from ..simulate import simulate_dataset

    return simulate_dataset(output_dir, replace(SAMPLE, seed=seed), overwrite=True)


def simulated_culture() -> list[LayerData]:
    """The sample: one simulated culture per neuron type, ROIs and reference images."""
    folder = Path(tempfile.mkdtemp(prefix="calcium-avae-sample-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    from napari import current_viewer

    per_file = [layers_from_file(path) for path in simulate_sample(folder)]
    return side_by_side(per_file, start=right_edge(current_viewer()))
