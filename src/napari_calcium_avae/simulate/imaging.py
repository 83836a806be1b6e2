"""What the microscope's camera sees: a field of view framed on the imaged neurons.

The field of view is the bounding box of the imaged somata plus a margin, sampled finely
enough that a soma spans several pixels (capped at ``MAX_PIXELS`` a side). Its reference
(mean) image looks like a widefield mean image: every soma in view, imaged or not, at its
time-mean noise-free fluorescence, blurred by the point-spread function, on a dim, uneven
neuropil background inside the dish, with shot noise. ROI masks are discs at the imaged
somata on the same pixel grid. Arrays are indexed (x, y), as NWB stores images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from .fluorescence import F0
from .session import Culture, culture_fluorescence

SOMA_RADIUS_UM = 7.5
SOMA_RADIUS_PX = 4.0
"""Soma radius in pixels wherever the field of view fits in ``MAX_PIXELS``."""
MAX_PIXELS = 1024
MARGIN_UM = 50.0
"""Space kept around the outermost imaged somata."""
MIN_ROI_RADIUS_PX = 1.5
PSF_SIGMA_UM = 2.0
NEUROPIL_LEVEL = 0.25
"""Neuropil background as a fraction of the resting fluorescence F0."""
NEUROPIL_CONTRAST = 0.3
NEUROPIL_SCALE_UM = 40.0
PHOTONS_PER_UNIT = 4.0
"""Detected photons per fluorescence unit: sets the shot noise of the mean image."""
MEAN_SAMPLING_HZ = 10.0
"""Frames per second at which the mean fluorescence of non-imaged somata is sampled."""


@dataclass(frozen=True)
class FieldOfView:
    """The imaged plane: where it lies in the dish, its mean image and the ROI masks."""

    origin_um: tuple[float, float]
    """Dish coordinates (from the dish centre) of the corner of pixel (0, 0)."""
    pixel_um: float
    image: np.ndarray
    """(x, y) float32 mean image, x the dish's horizontal axis."""
    masks: list[list[tuple[int, int, float]]]
    """One NWB pixel mask (x, y, weight) per imaged neuron, in ROI order."""
    soma_radius_um: float = SOMA_RADIUS_UM


def disc_pixels(
    centres_px: np.ndarray, radius_px: float, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(disc, x, y) of the pixels whose centres lie in each disc, inside the image.

    A radius of at least ``MIN_ROI_RADIUS_PX`` gives every disc centred in the image at
    least one pixel.
    """
    r = int(np.ceil(radius_px))
    dx, dy = (d.ravel() for d in np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1)))
    corner = np.floor(centres_px).astype(np.intp)
    x = corner[:, :1] + dx
    y = corner[:, 1:] + dy
    inside = ((x + 0.5 - centres_px[:, :1]) ** 2 + (y + 0.5 - centres_px[:, 1:]) ** 2) <= (
        radius_px**2
    )
    inside &= (x >= 0) & (x < shape[0]) & (y >= 0) & (y < shape[1])
    disc = np.broadcast_to(np.arange(len(centres_px))[:, None], x.shape)
    return disc[inside], x[inside], y[inside]


def _smooth_field(shape: tuple[int, int], scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-smoothed noise of unit SD, drawn on a coarse grid and interpolated (fast)."""
    step = max(1, int(scale_px / 4))
    coarse = rng.standard_normal((shape[0] // step + 2, shape[1] // step + 2))
    coarse = gaussian_filter(coarse, scale_px / step)
    field = zoom(coarse, step, order=1)[: shape[0], : shape[1]]
    return field / max(float(field.std()), 1e-12)


def field_of_view(
    culture: Culture, imaged: np.ndarray, clean: np.ndarray, per_spike: bool = False
) -> FieldOfView:
    """Frame the imaged neurons and draw the plane's mean image (deterministic per culture).

    Imaged somata are drawn at the mean of their noise-free traces ``clean``; the other
    somata in view at the mean of their fluorescence sampled at ``MEAN_SAMPLING_HZ``.
    """
    radius = culture.dish_radius_um
    where = culture.positions_um[imaged]
    lo = np.maximum(where.min(axis=0) - MARGIN_UM, -radius)
    hi = np.minimum(where.max(axis=0) + MARGIN_UM, radius)
    pixel_um = max(SOMA_RADIUS_UM / SOMA_RADIUS_PX, float((hi - lo).max()) / MAX_PIXELS)
    shape = tuple(int(n) for n in np.ceil((hi - lo) / pixel_um))
    radius_px = max(SOMA_RADIUS_UM / pixel_um, MIN_ROI_RADIUS_PX)

    in_view = np.all(
        (culture.positions_um > lo - SOMA_RADIUS_UM) & (culture.positions_um < hi + SOMA_RADIUS_UM),
        axis=1,
    )
    others = np.setdiff1d(np.flatnonzero(in_view), imaged)
    somata = np.zeros(shape)
    if len(others):
        brightness = culture_fluorescence(culture, others, MEAN_SAMPLING_HZ, per_spike).mean(1)
        cell, x, y = disc_pixels((culture.positions_um[others] - lo) / pixel_um, radius_px, shape)
        somata[x, y] = brightness[cell]
    roi, x, y = disc_pixels((where - lo) / pixel_um, radius_px, shape)
    somata[x, y] = clean.mean(axis=1)[roi]  # imaged somata drawn last, on top
    masks: list[list[tuple[int, int, float]]] = [[] for _ in imaged]
    for k, mx, my in zip(roi, x, y, strict=True):
        masks[k].append((int(mx), int(my), 1.0))

    rng = np.random.default_rng([culture.seed, 2])
    x_um = lo[0] + (np.arange(shape[0]) + 0.5) * pixel_um
    y_um = lo[1] + (np.arange(shape[1]) + 0.5) * pixel_um
    in_dish = x_um[:, None] ** 2 + y_um[None, :] ** 2 <= radius**2
    unevenness = _smooth_field(shape, NEUROPIL_SCALE_UM / pixel_um, rng)
    neuropil = NEUROPIL_LEVEL * F0 * np.clip(1 + NEUROPIL_CONTRAST * unevenness, 0, None)
    light = gaussian_filter(somata, PSF_SIGMA_UM / pixel_um) + neuropil * in_dish
    image = rng.poisson(light * PHOTONS_PER_UNIT) / PHOTONS_PER_UNIT
    return FieldOfView(
        origin_um=(float(lo[0]), float(lo[1])),
        pixel_um=pixel_um,
        image=image.astype(np.float32),
        masks=masks,
    )
