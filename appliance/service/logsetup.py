"""Logging to journald when there is one, to stderr otherwise.

``systemd.journal.send`` silently drops messages when journald is not running
(a container, a laptop, a broken image), so the choice is made by looking for
journald's socket, not by whether the module imports. Under systemd without
journald, stderr still ends up wherever the unit sends it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
IDENTIFIER = "flashstation"


def journal_handler(socket: Path = JOURNAL_SOCKET) -> logging.Handler | None:
    """A JournalHandler if journald is listening and systemd-python is installed, else None."""
    if not socket.exists():
        return None
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER)


def setup_logging(level: int = logging.INFO, *, socket: Path = JOURNAL_SOCKET) -> str:
    """Replace the root handlers; returns ``"journal"`` or ``"stderr"``."""
    handler = journal_handler(socket)
    where = "journal"
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
        )
        where = "stderr"
    else:
        # journald stamps time, priority and thread itself
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return where
