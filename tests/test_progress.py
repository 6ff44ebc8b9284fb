"""Progress off a terminal: a few summary lines, not one per step. No services."""

from __future__ import annotations

import io

import pytest

from client.progress import SummaryProgress, progress


def test_a_thousand_steps_print_five_lines() -> None:
    out = io.StringIO()
    with SummaryProgress(total=1000, desc="mining BM25 negatives", unit="pair", file=out) as bar:
        for _ in range(1000):
            bar.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # 25 %, 50 %, 75 %, done
    assert lines[0].startswith("mining BM25 negatives: at 250/1000 pair")
    assert lines[-1].startswith("mining BM25 negatives: done 1000/1000 pair")


def test_polled_totals_and_postfix_as_the_job_follower_sets_them() -> None:
    out = io.StringIO()
    bar = SummaryProgress(total=10, desc="re-encode j1", unit="doc", file=out)
    for done in range(0, 11):  # a job polled every second: n and total set, then refresh
        bar.total, bar.n = 10, done
        bar.set_postfix_str("running")
    bar.close()
    bar.close()  # closing twice prints once
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("re-encode j1: done 10/10 doc")
    assert lines[-1].endswith("[running]")


def test_off_a_terminal_progress_is_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a tty, as under CI or `> log`
    assert isinstance(progress(total=3, desc="x", leave=False), SummaryProgress)
