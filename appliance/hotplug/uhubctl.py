"""Per-port power switching through ``uhubctl``, when the hub supports it.

Some hubs can cut power to one port (per-port power switching, "ppps");
powering a finished slot off tells the operator "take this one" and stops
a stick from being written by accident. It is an extra: nothing requires
``uhubctl`` or a capable hub. :func:`detect` runs ``uhubctl`` once and
parses its status; :func:`power_off` switches one port.

``uhubctl`` prints device serials in its status lines; only the hub lines
are parsed and nothing of its output is logged.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.errors import FlashStationError

log = logging.getLogger(__name__)

_HUB_LINE = re.compile(r"^Current status for hub (?P<location>[\d.-]+) \[(?P<info>.*)\]\s*$")

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class HubPowerError(FlashStationError):
    """uhubctl failed to switch a port."""


@dataclass(frozen=True)
class Hub:
    location: str  # uhubctl's -l value: "1-1.2", or "2" for a root hub
    usb_id: str  # vendor:product
    ports: int
    ppps: bool  # per-port power switching


def parse_status(text: str) -> list[Hub]:
    """Hubs in ``uhubctl`` output.

    A hub line reads ``Current status for hub 1-1 [0424:2514, USB 2.00, 4 ports, ppps]``;
    the last item says how the hub switches power (``ppps``: per port).
    """
    hubs = []
    for line in text.splitlines():
        match = _HUB_LINE.match(line.strip())
        if not match:
            continue
        info = match.group("info")
        usb_id = re.match(r"([0-9a-fA-F]{4}:[0-9a-fA-F]{4})", info)
        ports = re.search(r"(\d+) ports?", info)
        switching = info.rsplit(",", 1)[-1].strip()
        hubs.append(
            Hub(
                location=match.group("location"),
                usb_id=usb_id.group(1).lower() if usb_id else "",
                ports=int(ports.group(1)) if ports else 0,
                ppps=switching == "ppps",
            )
        )
    return hubs


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=20, check=False)


def detect(runner: Runner | None = None, program: str = "uhubctl") -> list[Hub]:
    """Hubs with per-port power switching; empty when uhubctl is missing or fails."""
    if runner is None:
        if shutil.which(program) is None:
            log.info("uhubctl not installed: no per-port power switching")
            return []
        runner = _run
    try:
        result = runner([program])
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("uhubctl could not run: %s", exc)
        return []
    if result.returncode != 0:
        log.warning("uhubctl exited with status %d", result.returncode)
        return []
    return [hub for hub in parse_status(result.stdout) if hub.ppps]


def hub_port(usb_device: str) -> tuple[str, int]:
    """uhubctl's (hub location, port) for a sysfs USB device name: ``1-1.2.3`` -> (``1-1.2``, 3)."""
    match = re.fullmatch(r"(\d+)-(\d+(?:\.\d+)*)", usb_device)
    if not match:
        raise ValueError(f"not a USB device name: {usb_device!r}")
    bus, chain = match.groups()
    head, _, last = chain.rpartition(".")
    return (f"{bus}-{head}" if head else bus), int(last)


def power_off(
    usb_device: str, hubs: Sequence[Hub], runner: Runner | None = None, program: str = "uhubctl"
) -> bool:
    """Switch off the port ``usb_device`` sits on; False when its hub cannot."""
    location, port = hub_port(usb_device)
    if not any(hub.location == location and port <= hub.ports for hub in hubs):
        return False
    result = (runner or _run)([program, "-l", location, "-p", str(port), "-a", "off"])
    if result.returncode != 0:
        raise HubPowerError(f"uhubctl could not switch off hub {location} port {port}")
    return True


def usb_device_of(devpath: str) -> str | None:
    """The sysfs USB device name (``1-1.2``) above a disk's ``DEVPATH``."""
    names = re.findall(r"/(\d+-\d+(?:\.\d+)*)(?=/|$)", devpath)
    return names[-1] if names else None


def power_off_slot(
    devpath: str, hubs: Sequence[Hub], runner: Runner | None = None, program: str = "uhubctl"
) -> bool:
    """Power off the port of a finished drive (its ``Drive.devpath``); False when impossible."""
    device = usb_device_of(devpath)
    if device is None:
        return False
    return power_off(device, hubs, runner, program)
