"""One error tree for everything that can go wrong with a target drive.

Every message names the target's path, the byte offset when there is one, and
the cause in plain words, because the operator has to find the physical stick
that failed. Leaves also inherit :class:`OSError` (gpiozero style) so callers
that only know the built-ins still catch them.
"""

from __future__ import annotations

import errno

from appliance.errors import FlashStationError


class DriveError(FlashStationError, OSError):
    """A target drive failed.

    ``reason`` is the short cause in words; ``code`` a stable machine-readable
    cause (``fake_capacity``, ``removed``, ``read_only``, ``too_small``,
    ``write_error``, ``verify_failed``, ``refused``, ``busy``) that the station
    maps to its own failure reasons.
    """

    reason = "drive error"
    code = "unknown"

    def __init__(self, path: str, message: str, *, offset: int | None = None) -> None:
        where = f"{path}" if offset is None else f"{path} at offset {offset}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.offset = offset
        self.detail = message

    def __str__(self) -> str:
        return str(self.args[0])


class DriveRefused(DriveError):
    """We will not touch this target (mounted, a partition, the system disk...)."""

    reason = "refused"
    code = "refused"


class DriveBusy(DriveError):
    """Someone else holds the device (``O_EXCL`` failed with EBUSY)."""

    reason = "busy"
    code = "busy"


class WriteProtected(DriveError):
    """The drive or its switch refuses writes (BLKROGET, EROFS)."""

    reason = "write-protected"
    code = "read_only"


class DriveGone(DriveError):
    """The drive disappeared (pulled out, reset, USB bus error)."""

    reason = "drive removed"
    code = "removed"


class DriveIOError(DriveError):
    """The drive returned an I/O error."""

    reason = "I/O error"
    code = "write_error"


class VerifyFailed(DriveError):
    """Data read back from the drive differs from what was written."""

    reason = "verify failed"
    code = "verify_failed"


class FakeCapacity(DriveError):
    """The drive claims more capacity than it stores (wrap-around or dropping writes)."""

    reason = "fake capacity"
    code = "fake_capacity"

    def __init__(self, path: str, real: int, claimed: int) -> None:
        super().__init__(
            path,
            f"fake capacity: about {real / 1e9:.1f} GB real of {claimed / 1e9:.1f} GB claimed",
        )
        self.real = real
        self.claimed = claimed


class TooSmall(DriveError):
    """The drive is below the minimum size or smaller than its plan."""

    reason = "too small"
    code = "too_small"


_GONE = {errno.ENODEV, errno.ENXIO, errno.ENOENT, errno.ESHUTDOWN, errno.ENOMEDIUM}


def translate(exc: OSError, path: str, action: str, offset: int | None) -> DriveError:
    """Turn an ``OSError`` from a read or write into the matching :class:`DriveError`."""
    if isinstance(exc, DriveError):
        return exc
    code = exc.errno
    cause = exc.strerror or str(exc)
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return WriteProtected(path, f"write-protected ({action}: {cause})", offset=offset)
    if code in _GONE:
        return DriveGone(path, f"drive removed ({action}: {cause})", offset=offset)
    if code == errno.EBUSY:
        return DriveBusy(path, f"busy: in use by another program ({action})", offset=offset)
    if code == errno.ENOSPC:
        return TooSmall(path, f"no space ({action}: {cause})", offset=offset)
    return DriveIOError(path, f"I/O error while {action} ({cause})", offset=offset)
