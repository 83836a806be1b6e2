"""The train widget starts from the estimator's own settings, as the command line does,
for each model it offers."""

import pytest

from napari_calcium_avae.cli import _model_from_args, build_parser
from napari_calcium_avae.model import DEFAULT_MODEL, MODELS


@pytest.mark.parametrize("name", list(MODELS))
def test_train_widget_cli_and_estimator_defaults_agree(make_napari_viewer, name) -> None:
    estimator = MODELS[name]().get_params()
    args = ["fit", "in.nwb", "-o", "m.pt", "--model", name]
    cli = _model_from_args(build_parser().parse_args(args))
    viewer = make_napari_viewer()
    _, train = viewer.window.add_plugin_dock_widget("napari-calcium-avae", "2. Train model")
    assert train.model_choice.currentText() == DEFAULT_MODEL
    train.model_choice.setCurrentText(name)
    widget = train.params()
    assert set(widget) <= set(estimator) and "latent_size" in widget
    # every setting the widget offers, as a new widget shows it (spin-box ranges and
    # decimals included), is the estimator's default and the command line's
    assert widget == {key: estimator[key] for key in widget}
    assert widget == {key: cli.get_params()[key] for key in widget}
