"""One settings object for the simulator: checked once, and the CLI's options follow it."""

from dataclasses import fields

import pytest

from napari_calcium_avae.cli import build_parser, main
from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.nwb import read_traces
from napari_calcium_avae.simulate import SimulationSettings


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"types": ()}, "No neuron types given"),
        ({"types": ("XX",)}, "Unknown neuron type 'XX'"),
        ({"cultures_per_type": 0}, "cultures_per_type must be at least 1"),
        ({"neurons_per_culture": 0}, "neurons_per_culture must be at least 1"),
        ({"noise_levels": ()}, "at least one noise level"),
        ({"noise_levels": (1.0, -0.5)}, "at least one noise level"),
        ({"frame_rate": 0.0}, "Frame rate must be .*positive"),
        ({"duration_s": -1.0}, "Duration, dish size and density must be positive"),
        ({"dish_size_mm": 0.0}, "Duration, dish size and density must be positive"),
        ({"density_per_mm2": 0.0}, "Duration, dish size and density must be positive"),
    ],
)
def test_unusable_settings_are_refused_on_creation(change, message):
    with pytest.raises(CalciumAvaeError, match=message):
        SimulationSettings(**change)


def test_sequences_become_tuples_so_settings_stay_hashable_and_comparable():
    s = SimulationSettings(types=["RS"], noise_levels=[1, 2.5])
    assert s.types == ("RS",) and s.noise_levels == (1.0, 2.5)
    assert s == SimulationSettings(types=("RS",), noise_levels=(1.0, 2.5))
    assert s.n_cultures == 5


def test_the_simulate_command_has_one_option_per_field_with_its_default():
    args = build_parser().parse_args(["simulate", "-o", "out"])
    defaults = SimulationSettings()
    for f in fields(SimulationSettings):
        value = getattr(args, f.name)
        expected = getattr(defaults, f.name)
        assert (tuple(value) if isinstance(value, list) else value) == expected, f.name


def test_the_simulate_command_reads_every_option():
    args = build_parser().parse_args(
        ["simulate", "-o", "out", "--types", "IB", "--neurons", "0", "--noise", "0.5", "2",
         "--dish-size", "1.5", "--released-wiring", "--duration", "4"]
    )  # fmt: skip
    assert (args.types, args.neurons_per_culture, args.noise_levels) == (["IB"], 0, [0.5, 2.0])
    assert (args.dish_size_mm, args.released_wiring, args.duration_s) == (1.5, True, 4.0)


def test_zero_neurons_on_the_command_line_images_every_neuron(tmp_path):
    small = ["--density", "60", "--dish-size", "0.5", "--duration", "2", "--frame-rate", "20"]
    args = ["simulate", "-o", str(tmp_path), "--types", "RS", "--cultures-per-type", "1"]
    assert main([*args, "--neurons", "0", *small]) == 0
    [path] = sorted(tmp_path.rglob("*.nwb"))
    assert read_traces(path).n_rois == round(60 * 0.5**2)
