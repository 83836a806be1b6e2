"""The parameter counts that docs/model.md states are those of the models the code builds."""

import re
from pathlib import Path

import pytest

from napari_calcium_avae.model import AVAE
from napari_calcium_avae.model.architectures import TimingPath, build

MODEL_DOC = Path(__file__).resolve().parents[2] / "docs" / "model.md"


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def _n_parameters(net) -> int:
    return sum(p.numel() for p in net.parameters())


def _paragraph(architecture: str) -> str:
    """The paragraph of docs/model.md that opens with the architecture's name in bold."""
    doc = MODEL_DOC.read_text(encoding="utf-8")
    start = doc.index(f"**`{architecture}`**")
    end = doc.find("\n\n", start)
    return " ".join(doc[start : end if end >= 0 else None].split())


@pytest.fixture(scope="module")
def defaults():
    return AVAE().get_params()


def test_released_count_in_the_docs(defaults):
    claim = re.search(
        r"([\d,]+) parameters at \((\d+), (\d+)\), T = ([\d,]+), without the timing path",
        _paragraph("released"),
    )
    assert claim, "docs/model.md no longer states the released model's parameter count"
    n, d1, d2, n_frames = (_count(g) for g in claim.groups())
    assert (d1, d2) == (defaults["hidden_size"], defaults["latent_size"])
    assert n == _n_parameters(build("released", n_frames, d1, d2, timing_channels=0))


def test_recurrent_counts_in_the_docs_with_and_without_the_timing_path(defaults):
    claim = re.search(
        r"([\d,]+) parameters at \((\d+), (\d+)\), and ([\d,]+) with the default timing "
        r"path \((\d+) channels\)",
        _paragraph("recurrent"),
    )
    assert claim, "docs/model.md no longer states the recurrent model's parameter counts"
    bare, d1, d2, with_timing, channels = (_count(g) for g in claim.groups())
    assert (d1, d2) == (defaults["hidden_size"], defaults["latent_size"])
    assert channels == defaults["timing_channels"]
    # the recurrent model accepts any length: its size does not depend on n_frames
    assert bare == _n_parameters(build("recurrent", 1000, d1, d2, timing_channels=0))
    assert with_timing == _n_parameters(build("recurrent", 1000, d1, d2, channels))


def test_timing_path_count_in_the_docs(defaults):
    doc = " ".join(MODEL_DOC.read_text(encoding="utf-8").split())
    claim = re.search(r"([\d,]+) parameters at (\d+) channels", doc)
    assert claim, "docs/model.md no longer states the timing path's parameter count"
    n, channels = (_count(g) for g in claim.groups())
    assert channels == defaults["timing_channels"]
    assert n == _n_parameters(TimingPath(channels))
