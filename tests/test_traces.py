import numpy as np
import pandas as pd
import pytest

from napari_calcium_avae import CalciumAvaeError, Traces
from napari_calcium_avae.checks import usable_rows
from napari_calcium_avae.errors import CalciumAvaeWarning


def disc(row, col, radius=2):
    rr, cc = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    keep = rr**2 + cc**2 <= radius**2
    return np.column_stack([rr[keep] + row, cc[keep] + col, np.ones(keep.sum())])


def test_traces_are_float32_rois_by_frames_with_defaults():
    t = Traces(np.arange(12).reshape(3, 4), rate=2.0)
    assert t.data.dtype == np.float32 and (t.n_rois, t.n_frames) == (3, 4)
    assert list(t.roi_ids) == [0, 1, 2]
    np.testing.assert_allclose(t.times, [0, 0.5, 1.0, 1.5])


def test_irregular_timestamps_win_over_rate():
    t = Traces(np.zeros((1, 3)), timestamps=[0.0, 0.1, 0.25])
    np.testing.assert_allclose(t.times, [0.0, 0.1, 0.25])
    with pytest.raises(ValueError, match="timestamps must have one entry per frame"):
        Traces(np.zeros((1, 3)), timestamps=[0.0, 0.1])


def test_label_image_and_centroids_follow_rows_and_cols():
    masks = [disc(5, 20), disc(30, 8)]
    t = Traces(np.zeros((2, 4)), masks=masks, image_shape=(40, 32))
    labels = t.label_image()
    assert labels[5, 20] == 1 and labels[30, 8] == 2 and labels[0, 0] == 0
    np.testing.assert_allclose(t.centroids, [[5, 20], [30, 8]])


def test_overlapping_masks_keep_the_stronger_weight():
    a = np.array([[1, 1, 0.2], [1, 2, 0.9]])
    b = np.array([[1, 1, 0.8], [1, 2, 0.1]])
    labels = Traces(np.zeros((2, 2)), masks=[a, b], image_shape=(3, 3)).label_image()
    assert labels[1, 1] == 2 and labels[1, 2] == 1


def test_no_masks_is_a_user_error():
    with pytest.raises(CalciumAvaeError, match="no ROI masks"):
        Traces(np.zeros((2, 2))).label_image()


def test_subset_keeps_ids_table_and_masks_aligned():
    table = pd.DataFrame({"neuron_type": ["RS", "IB", "CH"]})
    t = Traces(
        np.arange(9).reshape(3, 3),
        roi_ids=[10, 11, 12],
        roi_table=table,
        masks=[disc(2, 2), disc(5, 5), disc(8, 8)],
        image_shape=(12, 12),
    )
    s = t.subset(np.array([True, False, True]))
    assert list(s.roi_ids) == [10, 12] and list(s.roi_rows) == [0, 2]
    assert list(s.roi_table["neuron_type"]) == ["RS", "CH"]
    np.testing.assert_allclose(s.centroids[1], [8, 8])


def test_bad_shapes_are_reported():
    with pytest.raises(CalciumAvaeError, match="2-D"):
        Traces(np.zeros(5))
    with pytest.raises(ValueError, match="roi_ids and roi_rows must have one entry per ROI"):
        Traces(np.zeros((2, 3)), roi_ids=[1])


def test_usable_rows_names_nan_and_flat_rois():
    x = np.random.default_rng(0).random((5, 20))
    x[1, 3] = np.inf
    x[3] = 7.0
    with pytest.warns(CalciumAvaeWarning) as record:
        ok = usable_rows(x, roi_ids=np.array([100, 101, 102, 103, 104]))
    assert list(ok) == [True, False, True, False, True]
    messages = " ".join(str(w.message) for w in record)
    assert (
        "NaN or Inf" in messages and "101" in messages and "flat" in messages and "103" in messages
    )


def test_usable_rows_refuses_too_few_frames_or_rois():
    with pytest.raises(CalciumAvaeError, match="5 frames"):
        usable_rows(np.random.default_rng(1).random((10, 5)), min_frames=16)
    with pytest.raises(CalciumAvaeError, match="3 usable"):
        usable_rows(np.random.default_rng(1).random((3, 50)), min_rois=4)
