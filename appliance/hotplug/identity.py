"""Drive identity without the drive's serial number.

A stick's serial is the one thing that could tie a loaded stick back to its
donor or to the station, so it never leaves this module in clear: logs,
events, JSON and exceptions carry :func:`drive_id`, a keyed BLAKE2b hash
with the station's own salt (kept in ``service.state_dir``). The same stick
gets the same id on the same station; nobody without the salt can go back.
"""

from __future__ import annotations

import hashlib

ID_BYTES = 8


def drive_id(serial: str, salt: bytes) -> str:
    """A short, stable, salted id for a drive serial (16 hex digits)."""
    if not salt:
        raise ValueError("drive_id needs a non-empty salt")
    key = hashlib.blake2b(salt, digest_size=32).digest()  # any salt length fits the key
    return hashlib.blake2b(
        serial.encode("utf-8", "replace"), key=key, digest_size=ID_BYTES
    ).hexdigest()
