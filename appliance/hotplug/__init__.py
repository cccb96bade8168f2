"""Hotplug and drive safety: know every plugged device, wipe only donated sticks.

The package watches udev (:mod:`.monitor`), decides what each block device is
(:mod:`.classify`), names physical ports (:mod:`.slots`), keeps non-storage
USB devices from binding drivers (:mod:`.usbpolicy`) and never lets a raw
serial out (:mod:`.identity`). It never imports the engine or content
packages: it emits events and verdicts, and the station acts on them.
"""

from appliance.hotplug.classify import Classifier, Context, Decision, Verdict, classify
from appliance.hotplug.device import DeviceInfo
from appliance.hotplug.identity import drive_id
from appliance.hotplug.props import DumpError, parse_dump, read_dump

__all__ = [
    "Classifier",
    "Context",
    "Decision",
    "DeviceInfo",
    "DumpError",
    "Verdict",
    "classify",
    "drive_id",
    "parse_dump",
    "read_dump",
]
