"""The calcium-avae command: help everywhere, one-line errors with status 2."""

import h5py
import pytest

from napari_calcium_avae.cli import build_parser, main

COMMANDS = ["inspect", "simulate", "fit", "apply", "demo", "bench"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage: calcium-avae" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("calcium-avae ")


MINIMAL_ARGS = {
    "inspect": ["inspect", "x.nwb"],
    "simulate": ["simulate", "-o", "out"],
    "fit": ["fit", "x.nwb", "-o", "m.pt"],
    "apply": ["apply", "m.pt", "x.nwb", "-o", "out"],
    "demo": ["demo"],
    "bench": ["bench"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_wired(command):
    assert build_parser().parse_args(MINIMAL_ARGS[command]).func.__name__ == f"cmd_{command}"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("not an nwb file"), "not HDF5"),
        (lambda p: h5py.File(p, "w").close(), "not an NWB file"),
    ],
    ids=["missing", "text", "plain-hdf5"],
)
def test_bad_files_give_one_line_and_status_2(tmp_path, capsys, make, expected):
    path = tmp_path / "input.nwb"
    make(path)
    assert main(["inspect", str(path)]) == 2
    assert expected in one_line_error(capsys)


def test_truncated_file(tmp_path, capsys):
    path = tmp_path / "input.nwb"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=list(range(100000)))
        f.attrs["neurodata_type"] = "NWBFile"
    path.write_bytes(path.read_bytes()[:3000])
    assert main(["inspect", str(path)]) == 2
    assert "truncated" in one_line_error(capsys)


def test_apply_needs_an_output(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["apply", "m.pt", "x.nwb"])
    assert exc.value.code == 2


def test_folder_without_nwb_files(tmp_path, capsys):
    assert main(["apply", "missing.pt", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    assert "no .nwb files" in one_line_error(capsys)
