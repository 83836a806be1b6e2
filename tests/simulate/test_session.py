import numpy as np
import pytest
from pynwb import NWBHDF5IO

from napari_calcium_avae.errors import CalciumAvaeError, CalciumAvaeWarning
from napari_calcium_avae.nwb.validate import dandi_validate_problems, validation_problems
from napari_calcium_avae.simulate import (
    culture_fluorescence,
    simulate_culture,
    simulate_dataset,
    simulate_imaged_cultures,
)

SMALL = {"density_per_mm2": 400.0, "dish_size_mm": 1.0, "duration_s": 3.0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    calls = []
    paths = simulate_dataset(
        out,
        types=("RS", "CH"),
        cultures_per_type=1,
        neurons_per_culture=12,
        frame_rate=33.0,
        noise_levels=(1.0, 2.5),
        seed=4,
        progress=lambda done, total, msg: calls.append((done, total)),
        **SMALL,
    )
    return out, paths, calls


def test_dandi_layout_and_progress(dataset):
    out, paths, calls = dataset
    assert [p.relative_to(out).as_posix() for p in paths] == [
        "sub-RS01/sub-RS01_ses-culture_ophys.nwb",
        "sub-CH01/sub-CH01_ses-culture_ophys.nwb",
    ]
    assert calls == [(1, 2), (2, 2)]


def test_sessions_pass_validation(dataset):
    for path in dataset[1]:
        assert validation_problems(path) == []
    assert dandi_validate_problems(dataset[1][0]) == []


def test_session_content_matches_the_culture(dataset):
    _, paths, _ = dataset
    with NWBHDF5IO(str(paths[1]), "r") as io:
        nwb = io.read()
        assert nwb.subject.subject_id == "CH01"
        assert nwb.subject.species == "Mus musculus"
        fl = nwb.processing["ophys"]["Fluorescence"]
        assert set(fl.roi_response_series) == {
            "RoiResponseSeries",
            "RoiResponseSeries_sigma_2.5",
            "NoiseFreeFluorescence",
        }
        clean = fl["NoiseFreeFluorescence"].data[:]
        assert clean.shape == (99, 12)  # time x ROIs, 3 s at 33 Hz
        for name, sigma in (("RoiResponseSeries", 1.0), ("RoiResponseSeries_sigma_2.5", 2.5)):
            s = fl[name]
            assert s.rate == 33.0 and s.unit == "a.u."
            assert np.std(s.data[:] - clean) == pytest.approx(sigma, rel=0.15)
        ps = nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        table = ps.to_dataframe()
        assert (table["neuron_type"] == "CH").all()
        assert all(len(m) >= 3 for m in table["pixel_mask"])
        units = nwb.units.to_dataframe()
        assert list(units["roi_index"]) == list(range(12))
        assert nwb.units.resolution == 0.001
        assert all(len(t) > 0 for t in units["spike_times"])  # imaged neurons spiked
        conn = nwb.processing["simulation"]["connectivity"].to_dataframe()
        idx = table["neuron_index"].to_numpy()
        edges = list(conn[["pre_roi", "post_roi", "weight"]].itertuples(index=False))
        assert edges
        for pre, _, w in edges:
            assert (w > 0) == table["excitatory"].iloc[pre]
        image = nwb.processing["ophys"]["SegmentationImages"]["mean"].data[:]
        assert image.max() > 42.0
        for mask in table["pixel_mask"]:  # (x, y) masks on the (x, y) image
            xs, ys = np.array([(x, y) for x, y, _ in mask]).T
            assert xs.max() < image.shape[0] and ys.max() < image.shape[1]
        plane = nwb.imaging_planes["ImagingPlane"]
        pixel_um, origin = plane.grid_spacing[0], plane.origin_coords[:]
        for mask, x_um, y_um in zip(table["pixel_mask"], table["x_um"], table["y_um"], strict=True):
            centre = np.array([(x, y) for x, y, _ in mask]).mean(axis=0) + 0.5
            np.testing.assert_allclose(origin + centre * pixel_um, (x_um, y_um), atol=pixel_um)
    # ground truth matches a re-simulation of the same culture
    culture = simulate_culture("CH", None, seed=_culture_seed(4, "CH", 0), **SMALL)
    np.testing.assert_allclose(clean, culture_fluorescence(culture, idx, 33.0).T, rtol=1e-6)
    for row, i in enumerate(idx):
        np.testing.assert_allclose(units["spike_times"].iloc[row], culture.spike_times_ms[i] / 1000)
    sub = culture.weights[idx][:, idx]
    assert sub.nnz == len(edges)
    for pre, post, w in edges:
        assert sub[post, pre] == pytest.approx(w)


def _culture_seed(seed, neuron_type, index):
    from napari_calcium_avae.simulate.session import NEURON_TYPES, _sub_seed

    return _sub_seed(seed, list(NEURON_TYPES).index(neuron_type), index, 0)


def test_same_seed_same_data(dataset, tmp_path):
    _, paths, _ = dataset
    again = simulate_dataset(
        tmp_path, types=("RS",), cultures_per_type=1, neurons_per_culture=12,
        frame_rate=33.0, noise_levels=(1.0, 2.5), seed=4, **SMALL,
    )  # fmt: skip
    with NWBHDF5IO(str(paths[0]), "r") as a, NWBHDF5IO(str(again[0]), "r") as b:
        oa, ob = a.read().processing["ophys"], b.read().processing["ophys"]
        fa, fb = oa["Fluorescence"], ob["Fluorescence"]
        for name in fa.roi_response_series:
            np.testing.assert_array_equal(fa[name].data[:], fb[name].data[:])
        images = [o["SegmentationImages"]["mean"].data[:] for o in (oa, ob)]
        np.testing.assert_array_equal(*images)


def test_in_memory_cultures_are_what_the_files_hold(dataset):
    _, paths, _ = dataset
    cultures = list(
        simulate_imaged_cultures(
            types=("RS", "CH"), cultures_per_type=1, neurons_per_culture=12,
            frame_rate=33.0, noise_levels=(1.0, 2.5), seed=4, **SMALL,
        )
    )  # fmt: skip
    assert [c.label for c in cultures] == ["RS01", "CH01"]
    for c, path in zip(cultures, paths, strict=True):
        with NWBHDF5IO(str(path), "r") as io:
            fluorescence = io.read().processing["ophys"]["Fluorescence"]
            np.testing.assert_array_equal(fluorescence["RoiResponseSeries"].data[:].T, c.noisy[0])
            np.testing.assert_array_equal(
                fluorescence["RoiResponseSeries_sigma_2.5"].data[:].T, c.noisy[1]
            )
            np.testing.assert_array_equal(fluorescence["NoiseFreeFluorescence"].data[:].T, c.clean)
    with pytest.raises(CalciumAvaeError, match="Unknown neuron type"):
        simulate_imaged_cultures(types=("XX",))  # checked before iterating


def test_too_few_active_neurons_warns_and_none_active_raises(tmp_path):
    small = {"density_per_mm2": 200.0, "dish_size_mm": 0.5, "types": ("RS",)}  # 50 neurons
    with pytest.warns(CalciumAvaeWarning, match="only"):
        paths = simulate_dataset(
            tmp_path / "a", cultures_per_type=1, neurons_per_culture=50, duration_s=2.0,
            frame_rate=20.0, **small,
        )  # fmt: skip
    with NWBHDF5IO(str(paths[0]), "r") as io:
        n_rois = len(io.read().processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"])
    assert 0 < n_rois < 50
    with pytest.raises(CalciumAvaeError, match="no neuron spiked"):
        simulate_dataset(
            tmp_path / "b", cultures_per_type=1, duration_s=0.002, frame_rate=1000.0, **small
        )


def test_bad_dataset_arguments(tmp_path):
    with pytest.raises(CalciumAvaeError, match="Unknown neuron type 'XX'"):
        simulate_dataset(tmp_path, types=("XX",))
    with pytest.raises(CalciumAvaeError, match="at least one noise level"):
        simulate_dataset(tmp_path, noise_levels=())
    with pytest.raises(CalciumAvaeError, match=r"Frame rate must be .*positive.*; got 0"):
        simulate_dataset(tmp_path, frame_rate=0)


def test_reference_image_lines_up_with_the_rois_when_read(tmp_path):
    from napari_calcium_avae.nwb import read_traces
    from napari_calcium_avae.simulate import simulate_dataset

    [path] = simulate_dataset(
        tmp_path,
        types=("RS",),
        cultures_per_type=1,
        neurons_per_culture=10,
        duration_s=4.0,
        frame_rate=20.0,
        dish_size_mm=1.0,
        seed=1,
    )
    traces = read_traces(path)
    image = next(iter(traces.images.values()))
    labels = traces.label_image()
    assert image.shape == labels.shape
    # somata span several pixels, and the ROIs sit on bright somata
    assert np.median(np.bincount(labels.ravel())[1:]) >= 20
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()
    # a mean image, not a black canvas: neuropil and other cells fill the field of view
    assert np.mean(image > 0.1 * np.percentile(image, 99)) > 0.5
    assert np.mean(image == 0) < 0.2
