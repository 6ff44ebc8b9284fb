"""Progress for long CLI work: a live bar on a terminal, a few summary lines in a file or CI log.

tqdm redraws with `\\r` many times a second; sent to a file, each redraw is one more line (a re-encode
wrote one a second, BM25-negative mining one per pair). Off a terminal, `progress` reports instead at
each quarter of the work (or each minute when the total is unknown) and once at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm


class SummaryProgress:
    """The part of tqdm's interface the CLI uses (`update`, `n`, `total`, `refresh`, `set_postfix_str`,
    `close`, a context manager), printing a handful of plain lines."""

    def __init__(
        self,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        file: TextIO | None = None,
        **_: Any,
    ) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.file = file or sys.stderr
        self.postfix = ""
        self.started = self._last = time.monotonic()
        self._quarter = 0
        self._closed = False

    def update(self, n: float = 1) -> None:
        self.n += n
        self.refresh()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s
        if refresh:
            self.refresh()

    def refresh(self) -> None:
        now = time.monotonic()
        if self.total:
            quarter = min(4, int(4 * self.n / self.total))
            if quarter > self._quarter and quarter < 4:  # 100 % is the closing line's
                self._quarter = quarter
                self._print(now)
        elif now - self._last >= 60:
            self._print(now)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._print(time.monotonic(), done=True)

    def _print(self, now: float, done: bool = False) -> None:
        self._last = now
        elapsed = now - self.started
        of = f"/{self.total:g}" if self.total else ""
        rate = f", {self.n / elapsed:.1f} {self.unit}/s" if elapsed > 0 and self.n else ""
        extra = f" [{self.postfix}]" if self.postfix else ""
        state = "done" if done else "at"
        print(
            f"{self.desc}: {state} {self.n:g}{of} {self.unit} in {elapsed:.0f} s{rate}{extra}", file=self.file
        )

    def __enter__(self) -> SummaryProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: float | None = None, desc: str = "", unit: str = "it", **kwargs: Any) -> Any:
    """A tqdm bar when stderr is a terminal, else a SummaryProgress; same calls either way."""
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, **kwargs)
    return SummaryProgress(total=total, desc=desc, unit=unit, **kwargs)
