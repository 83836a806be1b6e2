"""Terminal progress for long work: one place for how the CLI, the demo and the benchmark
report it.

On a terminal it draws a tqdm bar. In a log (CI, a batch job, ``| tee``) a redrawn bar
writes thousands of characters on one line, so there it prints one plain line every few
percent instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

#: a progress callback: ``progress(done, total, message)``
ProgressCallback = Callable[[int, int, str], None]

LOG_EVERY_PERCENT = 5


class _LogLines:
    """A tqdm-like counter that prints a line at every ``LOG_EVERY_PERCENT`` of the total."""

    def __init__(self, total: int | None, desc: str, unit: str, file: IO[str]) -> None:
        self.total = total
        self.n = 0
        self.desc = desc
        self.unit = unit
        self.file = file
        self.postfix = ""
        self._start = time.monotonic()
        self._last_step = -1

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        self.refresh()

    def refresh(self) -> None:
        if self.total:
            step = int(100 * self.n / self.total) // LOG_EVERY_PERCENT
            if step == self._last_step and self.n < self.total:
                return
            self._last_step = step
            count = f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f} %)"
        else:
            count = f"{self.n} {self.unit}"
        elapsed = time.monotonic() - self._start
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {count}, {elapsed:.0f} s{extra}", file=self.file, flush=True)

    def close(self) -> None:
        if self.total and self.n < self.total and self._last_step >= 0:
            self._last_step = -1
            self.refresh()

    def __enter__(self) -> _LogLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    total: int | None = None, desc: str = "", unit: str = "it", file: IO[str] | None = None
) -> Any:
    """A tqdm bar on a terminal, plain log lines elsewhere; both are context managers with
    ``update``, ``set_postfix``, ``set_postfix_str``, ``n``, ``total`` and ``close``."""
    file = sys.stderr if file is None else file
    if getattr(file, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=file)
    return _LogLines(total, desc, unit, file)


def progress_callback(desc: str, unit: str = "step") -> ProgressCallback:
    """A ``progress(done, total, message)`` callback that drives one :func:`progress_bar`."""
    state: dict[str, Any] = {}

    def progress(done: int, total: int, message: str) -> None:
        if "bar" not in state:
            state["bar"] = progress_bar(total=total, desc=desc, unit=unit)
        bar = state["bar"]
        bar.total = total
        bar.set_postfix_str(message, refresh=False)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return progress


def show_epochs(epochs: Iterable[Any], total: int, desc: str = "training") -> None:
    """Consume a training generator, showing each epoch's losses (see ``EpochReport``)."""
    with progress_bar(total=total, desc=desc, unit="epoch") as bar:
        for report in epochs:
            bar.total = report.n_epochs
            bar.set_postfix(train=f"{report.train_loss:.4g}", val=f"{report.val_loss:.4g}")
            bar.update(report.epoch - bar.n)  # a resumed run starts past epoch 1
