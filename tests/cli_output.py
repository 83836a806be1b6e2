"""What the calcium-avae command printed, as the CLI tests check it."""


def one_line_error(capsys) -> str:
    """The one error line, after any progress lines; never a traceback."""
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in err), err
    errors = [line for line in err if line.startswith("calcium-avae: error:")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    return errors[0]
