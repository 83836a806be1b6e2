"""Biophysical culture simulator: Izhikevich network, calcium indicator fluorescence, NWB."""

from .dataset import simulate_dataset
from .dynamics import NEURON_TYPES
from .fluorescence import add_noise, fluorescence, saturation_kappa
from .imaging import FieldOfView, field_of_view
from .indicators import INDICATORS, Indicator, get_indicator
from .network import Network, build_network
from .session import (
    Culture,
    ImagedCulture,
    culture_fluorescence,
    firing_statistics,
    simulate_culture,
    simulate_imaged_cultures,
)
from .settings import SimulationSettings

__all__ = [
    "INDICATORS",
    "NEURON_TYPES",
    "Culture",
    "FieldOfView",
    "ImagedCulture",
    "Indicator",
    "Network",
    "SimulationSettings",
    "add_noise",
    "build_network",
    "culture_fluorescence",
    "field_of_view",
    "firing_statistics",
    "fluorescence",
    "get_indicator",
    "saturation_kappa",
    "simulate_culture",
    "simulate_dataset",
    "simulate_imaged_cultures",
]
