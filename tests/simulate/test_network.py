import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import kstest, rayleigh

from napari_calcium_avae.errors import CalciumAvaeError
from napari_calcium_avae.simulate.network import (
    build_network,
    dish_radius_um,
    find_contacts,
    grow_axons,
    place_somata,
)


def test_somata_are_uniform_in_the_dish_and_apart():
    rng = np.random.default_rng(0)
    pos = place_somata(3000, 1000.0, rng)
    r2 = (pos**2).sum(axis=1)
    assert pdist(pos).min() >= 7.5
    assert r2.max() <= 1000.0**2
    assert r2.mean() == pytest.approx(1000.0**2 / 2, rel=0.05)  # uniform in area


def test_overfull_dish_is_refused():
    with pytest.raises(CalciumAvaeError, match="100000 neurons do not fit in a dish"):
        place_somata(100_000, 500.0, np.random.default_rng(0))


def test_axons_are_unit_segment_chains_that_the_wall_stops():
    rng = np.random.default_rng(1)
    radius = 300.0
    pos = place_somata(200, radius, rng)
    vertices, starts, lengths = grow_axons(pos, radius, rng)
    assert (np.diff(starts) == lengths + 1).all()
    assert np.allclose(vertices[starts[:-1]], pos)
    step = np.diff(vertices, axis=0)
    inner = np.ones(len(vertices) - 1, dtype=bool)
    inner[starts[1:-1] - 1] = False  # jumps between consecutive axons
    assert np.allclose(np.hypot(*step[inner].T), 1.0)
    assert ((vertices**2).sum(axis=1) <= radius**2).all()
    assert lengths.max() < 2 * radius


def test_contacts_equal_brute_force():
    rng = np.random.default_rng(2)
    pos = place_somata(150, 350.0, rng)
    vertices, starts, _ = grow_axons(pos, 350.0, rng)
    dendrite = np.abs(rng.normal(150, 20, 150))
    pre, post = find_contacts(vertices, starts, pos, dendrite)
    want = set()
    for j in range(150):
        axon = vertices[starts[j] : starts[j + 1]]
        d = np.sqrt(((axon[:, None, :] - pos[None]) ** 2).sum(-1)).min(axis=0)
        want |= {(j, int(i)) for i in np.flatnonzero(d < dendrite) if i != j}
    assert set(zip(pre.tolist(), post.tolist(), strict=True)) == want


@pytest.fixture(scope="module")
def paper_networks():
    bio = build_network(2250, 3.0, np.random.default_rng(5))
    rel = build_network(2250, 3.0, np.random.default_rng(5), released_wiring=True)
    return bio, rel


def test_paper_culture_degree_lengths_and_types(paper_networks):
    net, _ = paper_networks
    assert dish_radius_um(3.0) == 1500.0
    degree = net.weights.nnz / 2250
    assert 14.5 < degree < 18.5  # released run: about 17
    assert (~net.excitatory).sum() == 450
    # Rayleigh, scale 100 um (mean 125 um), for axons far from the wall
    far = np.hypot(*net.positions_um.T) < net.dish_radius_um - 600
    assert net.axon_length_um[far].mean() == pytest.approx(100 * np.sqrt(np.pi / 2), abs=6)
    assert kstest(net.axon_length_um[far], rayleigh(scale=100).cdf).pvalue > 0.01
    assert kstest(net.axon_length_um[far], rayleigh(scale=80).cdf).pvalue < 1e-6
    assert net.dendrite_radius_um.mean() == pytest.approx(150, abs=2)
    assert net.dendrite_radius_um.std() == pytest.approx(20, abs=2)


def test_weights_follow_the_presynaptic_type(paper_networks):
    net, _ = paper_networks
    w = net.weights.tocoo()
    pre_exc = net.excitatory[w.col]
    assert (w.data[pre_exc] > 0).all() and (w.data[~pre_exc] < 0).all()
    assert w.data[pre_exc].mean() == pytest.approx(6.0, rel=0.02)
    assert w.data[~pre_exc].mean() == pytest.approx(-12.0, rel=0.02)


def test_released_wiring_is_the_transpose(paper_networks):
    bio, rel = paper_networks
    assert (bio.weights.T != rel.weights).nnz == 0
    w = rel.weights.tocoo()
    # the sign now follows the receiving row: "inhibitory" neurons only receive negative input
    assert (w.data[~rel.excitatory[w.row]] < 0).all()
