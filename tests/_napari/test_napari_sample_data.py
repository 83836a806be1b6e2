import numpy as np

from napari_calcium_avae._napari.sample_data import SAMPLE


def test_sample_culture_opens_three_types_side_by_side(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("napari-calcium-avae", "culture")
    rois = [layer for layer in viewer.layers if layer._type_string == "labels"]
    assert len(rois) == len(SAMPLE.types)
    assert [layer.features["neuron_type"].iloc[0] for layer in rois] == list(SAMPLE.types)
    for layer in rois:
        traces = layer.metadata["calcium_avae_traces"]
        assert traces.n_rois == SAMPLE.neurons_per_culture
        assert len(np.unique(layer.data)) == SAMPLE.neurons_per_culture + 1  # every ROI visible
    offsets = [layer.translate[1] for layer in rois]
    widths = [layer.data.shape[1] for layer in rois]
    assert offsets[0] == 0 and np.all(np.diff(offsets) >= widths[:-1])
