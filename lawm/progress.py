"""Progress: a tqdm bar on a terminal, a log line at most every 30 s anywhere else.

A bar redrawn with carriage returns turns into one very long line in a file or a CI log. Where
stderr is not a terminal (`dvc repro > log`, a Prefect worker, CI), `progress` writes the same
counts as log lines on logger `lawm.progress`, which Prefect copies into the flow run's log
(`PREFECT_LOGGING_EXTRA_LOGGERS=lawm`, set by `pipelines`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from tqdm.auto import tqdm
from tqdm.std import tqdm as plain_tqdm

LOG_INTERVAL_S = 30.0
LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}]{postfix}"
logger = logging.getLogger("lawm.progress")


class _LogLines:
    """A file for tqdm whose every redraw becomes one log line."""

    def write(self, text: str) -> None:
        if line := text.strip("\r\n "):
            logger.info(line)

    def flush(self) -> None:
        pass


class _LogBar(plain_tqdm):
    """tqdm that writes only on its interval: a new postfix waits for the next line instead of
    forcing one (tqdm's default), so a loop that sets a postfix every step still logs every 30 s.

    Without tqdm's monitor thread, which would redraw a slow bar from its own thread: a log line
    from there has no Prefect run context, so Prefect warns and the line misses the run's log."""

    monitor_interval = 0

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s="", refresh=True):
        super().set_postfix_str(s, refresh=False)


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, disable: bool = False, terminal: bool | None = None) -> tqdm:
    """tqdm over `iterable` (or updated by hand): a live bar when `terminal` (default: stderr is a TTY)."""
    if terminal if terminal is not None else sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable,
                    dynamic_ncols=True)
    return _LogBar(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable,
                   file=_LogLines(), mininterval=LOG_INTERVAL_S,
                   bar_format=LOG_FORMAT)
