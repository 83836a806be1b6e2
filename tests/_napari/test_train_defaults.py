"""The train widget starts from the estimator's own settings, as the command line does."""

from napari_calcium_avae.cli import _model_from_args, build_parser
from napari_calcium_avae.model import AVAE


def test_train_widget_cli_and_estimator_defaults_agree(make_napari_viewer) -> None:
    estimator = AVAE().get_params()
    cli = _model_from_args(build_parser().parse_args(["fit", "in.nwb", "-o", "m.pt"]))
    viewer = make_napari_viewer()
    _, train = viewer.window.add_plugin_dock_widget("napari-calcium-avae", "2. Train AVAE")
    widget = train.params()
    assert set(widget) <= set(estimator)
    # every setting the widget offers, as a new widget shows it (spin-box ranges and
    # decimals included), is the estimator's default and the command line's
    assert widget == {name: estimator[name] for name in widget}
    assert widget == {name: cli.get_params()[name] for name in widget}
