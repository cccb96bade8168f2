"""The root of Flash Station's error tree.

Every module defines its own errors under :class:`FlashStationError`; leaves may
also inherit the matching built-in (``OSError``, ``ValueError``) as gpiozero does.
Messages are one line, plain words, and name the path / offset / key at fault.
"""


class FlashStationError(Exception):
    """Base of every error the appliance raises on purpose."""


class UsageError(FlashStationError, ValueError):
    """Bad input from the command line (exit status 2)."""
