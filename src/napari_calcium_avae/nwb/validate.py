"""Checks that every NWB file the project writes is fit for DANDI.

nwbinspector and dandi are development extras, so they are imported only when a check
runs; the reader and writer never need them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..errors import CalciumAvaeError

#: Values nwbinspector's check_subject_sex accepts (male, female, unknown, other).
SUBJECT_SEXES = ("M", "F", "U", "O")


def subject_gaps(nwbfile: object) -> list[str]:
    """What a file lacks of the subject facts that DANDI's validation requires (the
    subject checks nwbinspector's "dandi" configuration makes CRITICAL): a subject, its
    id, species, sex and age (or date of birth). Plain pynwb, so writers can say so."""
    subject = getattr(nwbfile, "subject", None)
    if subject is None:
        return ["the subject itself"]
    gaps = []
    if not subject.subject_id:
        gaps.append("subject id")
    if not subject.species:
        gaps.append("species")
    if subject.sex not in SUBJECT_SEXES:
        gaps.append(f"sex (one of {', '.join(SUBJECT_SEXES)})")
    if not (subject.age or subject.date_of_birth):
        gaps.append("age (or date of birth)")
    return gaps


def validation_problems(path: str | Path) -> list[str]:
    """Messages that would stop a DANDI upload: schema errors and serious inspector findings.

    Runs nwbinspector with its "dandi" configuration (which includes ``pynwb.validate``)
    and keeps messages of importance CRITICAL, BEST_PRACTICE_VIOLATION, schema
    validation and checks that crashed; suggestions are dropped.
    """
    try:
        from nwbinspector import Importance, inspect_nwbfile, load_config
    except ImportError as err:
        raise CalciumAvaeError(
            "nwbinspector is not installed; install the dev extra: pip install "
            "'napari-calcium-avae[dev]'"
        ) from err
    path = Path(path)
    if not path.is_file():
        raise CalciumAvaeError(f"no such file: {path}")
    messages = inspect_nwbfile(
        nwbfile_path=str(path),
        config=load_config(filepath_or_keyword="dandi"),
        importance_threshold=Importance.BEST_PRACTICE_VIOLATION,
    )
    problems = []
    for message in messages:
        if message is None:
            continue
        problems.append(
            f"{message.importance.name}: {message.check_function_name} at "
            f"{message.location or '/'}: {message.message}"
        )
    return problems


def dandi_validate_problems(path: str | Path) -> list[str]:
    """Problems ``dandi validate`` reports for a loose file (no dandiset around it)."""
    executable = Path(sys.executable).with_name("dandi")
    if not executable.exists():
        raise CalciumAvaeError(
            f"the dandi command is not installed beside {sys.executable}; install the dev "
            "extra: pip install 'napari-calcium-avae[dev]'"
        )
    path = Path(path)
    if not path.is_file():
        raise CalciumAvaeError(f"no such file: {path}")
    done = subprocess.run(
        [
            str(executable),
            "validate",
            "--ignore",
            "NO_DANDISET_FOUND",
            "--min-severity",
            "WARNING",
            "-f",
            "json_lines",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = []
    for line in done.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        problems.append(
            f"{record.get('severity', '?')}: {record.get('id', '?')}: {record.get('message', '')}"
        )
    if done.returncode != 0 and not problems:
        problems.append(
            f"dandi validate exited with status {done.returncode}: "
            f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}"
        )
    return problems
