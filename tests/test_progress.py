"""Progress in a log: a line every few percent, never a redrawn bar."""

import io

from napari_calcium_avae.progress import LOG_EVERY_PERCENT, progress_bar, progress_callback


def test_a_log_gets_a_line_every_few_percent():
    out = io.StringIO()
    with progress_bar(total=1000, desc="training", unit="epoch", file=out) as bar:
        for _ in range(1000):
            bar.set_postfix(loss=1.0)
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 100 // LOG_EVERY_PERCENT + 1  # 0 %, every step, 100 %
    assert lines[-1].startswith("training: 1000/1000 epoch (100 %)")
    assert "loss=1.0" in lines[-1]


def test_callback_reports_the_last_step(capsys):
    progress = progress_callback("simulating")
    for done in range(1, 4):
        progress(done, 3, f"culture {done}")
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("simulating: 3/3 step (100 %)")
    assert err[-1].endswith("culture 3")


def test_a_resumed_training_counts_from_its_epoch(capsys):
    from types import SimpleNamespace

    from napari_calcium_avae.progress import show_epochs

    reports = [
        SimpleNamespace(epoch=e, n_epochs=10, train_loss=1.0, val_loss=1.0) for e in range(7, 11)
    ]
    show_epochs(reports, total=10)
    assert capsys.readouterr().err.splitlines()[-1].startswith("training: 10/10 epoch (100 %)")
