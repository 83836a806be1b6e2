"""Biophysical culture simulator: Izhikevich network, GCaMP6s fluorescence, NWB output."""

from .dynamics import NEURON_TYPES
from .fluorescence import add_noise, fluorescence, saturation_kappa
from .network import Network, build_network
from .session import (
    Culture,
    ImagedCulture,
    culture_fluorescence,
    firing_statistics,
    simulate_culture,
    simulate_dataset,
    simulate_imaged_cultures,
)

__all__ = [
    "NEURON_TYPES",
    "Culture",
    "ImagedCulture",
    "Network",
    "add_noise",
    "build_network",
    "culture_fluorescence",
    "firing_statistics",
    "fluorescence",
    "saturation_kappa",
    "simulate_culture",
    "simulate_dataset",
    "simulate_imaged_cultures",
]
