"""Progress bar for the command line: the ``progress`` callback of :func:`core.api.reconstruct` drawn by tqdm."""

from __future__ import annotations

import sys


class ProgressBar:
    """A ``progress(stage, step, total, loss)`` callback that draws one tqdm bar per stage on stderr."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, step: int, total: int, loss: float | None) -> None:
        if self.disable:
            return
        from tqdm import tqdm

        if self.bar is None or stage != self.stage or step < self.bar.n:
            self.close()
            self.bar = tqdm(total=total, desc=stage, file=sys.stderr, leave=False, dynamic_ncols=True)
            self.stage = stage
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
