"""A mixed culture's session keeps each ROI's neuron type and indicator, so that labels
can be scored per neuron (ARI) rather than per culture."""

import numpy as np
import pandas as pd
import pytest
from pynwb import NWBHDF5IO

from napari_calcium_avae.analysis.label_table import agreement, read_label_table
from napari_calcium_avae.nwb import read_traces
from napari_calcium_avae.nwb.validate import validation_problems
from napari_calcium_avae.simulate import (
    SimulationSettings,
    simulate_dataset,
    simulate_imaged_cultures,
)

SETTINGS = SimulationSettings(
    type_mix="RS=0.4,IB=0.3,CH=0.3",
    indicator_mix="GCaMP6s,GCaMP6f,OGB-1",
    cultures_per_type=1,
    neurons_per_culture=None,
    density_per_mm2=300.0,
    dish_size_mm=0.6,
    duration_s=2.0,
    frame_rate=60.0,  # more frames than ROIs, as nwbinspector expects
    noise_levels=(1.0,),
    seed=7,
)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    [path] = simulate_dataset(tmp_path_factory.mktemp("mixed"), SETTINGS)
    [culture] = simulate_imaged_cultures(SETTINGS)
    return path, culture


def test_each_roi_keeps_its_type_and_indicator(session):
    path, culture = session
    assert path.parent.name == "sub-MIX01"
    table = read_traces(path).roi_table
    np.testing.assert_array_equal(table["neuron_index"], culture.imaged)
    np.testing.assert_array_equal(table["neuron_type"].astype(str), culture.neuron_types)
    np.testing.assert_array_equal(table["indicator"].astype(str), culture.indicators)
    assert table["neuron_type"].nunique() == 3 and table["indicator"].nunique() == 3
    assert (table["culture"] == "MIX01").all()
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        ps = nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        assert "this neuron" in ps["neuron_type"].description
        assert "indicator" in ps["indicator"].description
        units = nwb.units.to_dataframe()
        np.testing.assert_array_equal(units["neuron_type"].astype(str), culture.neuron_types)
        assert "mixed types" in nwb.session_description
        assert "GCaMP6f" in nwb.imaging_planes["ImagingPlane"].indicator
    assert validation_problems(path) == []


def test_the_types_score_as_reference_labels(session, tmp_path):
    path, _ = session
    table = read_traces(path).roi_table.reset_index(drop=True)
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"roi": np.arange(len(table)), "label": table["neuron_type"]}).to_csv(
        csv, index=False
    )
    reference = read_label_table(csv, len(table))
    assert agreement(reference.labels, reference.labels) == pytest.approx(1.0)
    by_indicator = pd.factorize(table["indicator"])[0]
    assert agreement(by_indicator, reference.labels) < 0.5  # two independent labellings


def test_a_one_type_session_writes_its_indicator_per_roi(tmp_path):
    [path] = simulate_dataset(
        tmp_path, types=("CH",), cultures_per_type=1, neurons_per_culture=None,
        density_per_mm2=300.0, dish_size_mm=0.6, duration_s=1.0, frame_rate=20.0,
        indicator="OGB-1", seed=2,
    )  # fmt: skip
    table = read_traces(path).roi_table
    assert (table["neuron_type"] == "CH").all() and (table["indicator"] == "OGB-1").all()
    with NWBHDF5IO(str(path), "r") as io:
        assert "CH excitatory type" in io.read().session_description
