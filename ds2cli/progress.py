"""Progress bars: tqdm on a terminal, silent in logs (no TTY) or when quiet."""
from __future__ import annotations

import sys


def progress(iterable=None, *, total=None, desc=None, quiet=False, unit="it"):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True,
                disable=quiet or not sys.stderr.isatty(), leave=False)
