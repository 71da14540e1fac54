"""One way to tell the user what a long step is doing: stage messages on stdout, never stderr.

JupyterLab shows whatever a cell writes to stderr in a pink box, as if it were an error; the
analysis' and the stability report's stage lines are progress, not errors. :func:`stage_message`
sends them through the module's logger when logging is configured (the CLI configures it), else
prints them to stdout with a ``[label]`` prefix; without ``progress`` they are debug records only.
Progress *bars* are tqdm's (``tqdm.auto``: a widget in a notebook).
"""

from __future__ import annotations

import logging
import sys

__all__ = ["stage_message"]


def stage_message(logger: logging.Logger, label: str, progress: bool, message: str) -> None:
    """Report ``message`` of a stage run by ``label`` (e.g. ``'deq analyze'``).

    Parameters
    ----------
    logger : logging.Logger
        The calling module's logger.
    label : str
        The prefix of a printed line: ``[label] message``.
    progress : bool
        False: a debug record only. True: an INFO record when logging has handlers, else a line on
        stdout (flushed), so a notebook shows it as output.
    message : str
    """
    if not progress:
        logger.debug(message)
    elif logger.hasHandlers():
        logger.info(message)
    else:
        print(f"[{label}] {message}", file=sys.stdout, flush=True)
