"""Per-ROI reference labels from CSV, and their agreement (ARI) with clusters."""

from pathlib import Path

import numpy as np
import pytest

from napari_calcium_avae.analysis.label_table import agreement, read_label_table
from napari_calcium_avae.errors import CalciumAvaeError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_first_listed_label_and_none(tmp_path: Path) -> None:
    path = write(tmp_path, "roi,assemblies\n0,\n1,3 4\n3,2\n4,4 1\n")
    table = read_label_table(path, n_rois=6)
    assert table.column == "assemblies"
    # rows 2 and 5 are not listed, row 0 is empty: all three are 'none'
    np.testing.assert_array_equal(table.labels, [-1, 3, -1, 2, 4, -1])
    assert table.names == {2: "2", 3: "3", 4: "4"}


def test_text_labels_get_codes_and_keep_their_names(tmp_path: Path) -> None:
    path = write(tmp_path, "roi,label,comment\n0,RS,a\n1,CH,b\n2,RS,c\n3,,d\n")
    table = read_label_table(path, n_rois=4)
    assert table.column == "label"
    np.testing.assert_array_equal(table.labels, [1, 0, 1, -1])
    assert table.names == {0: "CH", 1: "RS"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cell,label\n0,1\n", "no 'roi' column"),
        ("roi,a,b\n0,1,2\n", "the columns a, b"),
        ("roi,label\n0,1\n9,2\n", "another recording"),
        ("roi,label\n0,1\n0,2\n", "twice"),
        ("roi,label\nx,1\n", "ROI rows"),
    ],
)
def test_bad_tables_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CalciumAvaeError, match=message):
        read_label_table(write(tmp_path, text), n_rois=4)


def test_agreement_is_ari_with_none_as_a_group() -> None:
    reference = np.array([-1, -1, 0, 0, 1, 1])
    assert agreement(np.array([5, 5, 2, 2, 7, 7]), reference) == pytest.approx(1.0)
    assert agreement(np.zeros(6, dtype=int), reference) == pytest.approx(0.0)
    with pytest.raises(CalciumAvaeError, match="reference labels"):
        agreement(np.zeros(5, dtype=int), reference)
