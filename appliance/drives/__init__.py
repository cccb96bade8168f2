"""Block-device and image-file I/O for targets: open, capacity, direct reads, refusals.

The lowest layer under the engine. :func:`open_target` runs the refusal checks
(:mod:`appliance.drives.safety`) and returns a :class:`Target`;
:mod:`appliance.drives.fake` has fault-injecting targets for tests and the
simulator. Every failure is a :class:`DriveError` naming path, offset and cause.
"""

from appliance.drives.errors import (
    DriveBusy,
    DriveError,
    DriveGone,
    DriveIOError,
    DriveRefused,
    FakeCapacity,
    TooSmall,
    VerifyFailed,
    WriteProtected,
)
from appliance.drives.safety import check_block_device, check_regular_file, system_disks
from appliance.drives.target import (
    ALIGN,
    DeviceTarget,
    Target,
    aligned_buffer,
    open_target,
)

__all__ = [
    "ALIGN",
    "DeviceTarget",
    "DriveBusy",
    "DriveError",
    "DriveGone",
    "DriveIOError",
    "DriveRefused",
    "FakeCapacity",
    "Target",
    "TooSmall",
    "VerifyFailed",
    "WriteProtected",
    "aligned_buffer",
    "check_block_device",
    "check_regular_file",
    "open_target",
    "system_disks",
]
