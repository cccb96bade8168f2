"""Errors of the content area: every one a :class:`FlashStationError` with a one-line message.

The station shows these to the operator, so messages are plain words and name
the file at fault (a path inside the pack, never a device serial).
"""

from __future__ import annotations

from appliance.errors import FlashStationError


class PackError(FlashStationError):
    """A content pack cannot be used. Base of everything below."""


class ManifestError(PackError, ValueError):
    """``manifest.yaml`` is missing, unreadable or malformed (or a tiers file is)."""


class SignatureError(PackError):
    """The signature is missing, malformed, or not made by a trusted key."""


class KeyFileError(PackError, ValueError):
    """A key file cannot be read, or would overwrite an existing one."""


class VerifyFailed(PackError):
    """Files on disk differ from the manifest; ``problems`` names each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        first = self.problems[0] if self.problems else "no details"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"content does not match its manifest: {first}{more}")


class ContentDamaged(PackError):
    """A file's bytes changed between verification and loading (raised while streaming)."""


class ContentRemoved(PackError):
    """The content SSD went away (unplugged) while it was in use."""


class VerifyCancelled(PackError):
    """Background verification was cancelled (SSD removed or station stopping)."""


class NoTierFits(PackError):
    """Not even the smallest tier fits a target."""


class MountError(PackError, OSError):
    """The content SSD could not be mounted or unmounted."""
