"""Wall-clock time per stage, and the progress lines of long work: one timer for the pipeline's stages and the
surface's steps (never written into a data file)."""
from __future__ import annotations

import time
from contextlib import contextmanager

from . import config


class Timer:
    """Time per stage into ``stages`` (a dict, new by default; rounded to ``digits`` when given).

    With ``progress`` (a callable taking a line), each stage announces itself when it starts and, when it took over
    ``config.PROGRESS_AFTER_S``, its time when it ends: long work is never silent. ``prefix`` starts every line.

    >>> t = Timer()
    >>> with t("load"):
    ...     pass
    >>> list(t.stages)
    ['load']
    """

    def __init__(self, progress=None, *, prefix: str = "", stages: dict | None = None, digits: int | None = None):
        self.stages = {} if stages is None else stages
        self.progress = progress
        self.prefix = prefix
        self.digits = digits

    @contextmanager
    def __call__(self, name):
        if self.progress:
            self.progress(f"{self.prefix}{name} ...")
        t = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            dt = time.perf_counter() - t
            total = self.stages.get(name, 0.0) + dt
            self.stages[name] = round(total, self.digits) if self.digits is not None else total
            if self.progress and ok and dt > config.PROGRESS_AFTER_S:
                self.progress(f"{self.prefix}{name}: {dt:.1f} s")
