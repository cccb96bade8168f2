"""One call for the station: a running-ready hotplug monitor from the config.

The station (or the simulator) calls :func:`make_monitor` with its event
callback, the per-station salt and a content predicate; it gets a
:class:`~.monitor.Monitor` to ``start()`` and ``stop()``. With a real udev
source and ``hotplug.usb_policy`` on, the USB policy is enforced through
sysfs; if the station lacks the rights (not root), it logs that and only
reports refused devices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from appliance.config.schema import HotplugConfig
from appliance.hotplug.classify import Classifier, Context
from appliance.hotplug.device import DeviceInfo
from appliance.hotplug.events import HotplugEvent
from appliance.hotplug.monitor import Monitor, PyudevSource, Source
from appliance.hotplug.slots import SlotMap, SlotStore
from appliance.hotplug.state import HotplugState, UEvent
from appliance.hotplug.sysinfo import live_devices, mounted_devnums, overlay_dirs, system_disks
from appliance.hotplug.usbpolicy import PolicyDecision, PolicyError, UsbPolicy, judge_properties

log = logging.getLogger(__name__)


def make_monitor(
    config: HotplugConfig,
    callback: Callable[[HotplugEvent], None],
    salt: bytes,
    is_content: Callable[[DeviceInfo], bool] | None = None,
    source: Source | None = None,
    sysfs_root: str | Path = "/sys",
    state_dir: str | Path | None = None,
) -> Monitor:
    """Build the monitor; ``source=None`` means real udev (pyudev).

    With a ``state_dir``, numbers given to ports not in ``hotplug.slots`` are
    remembered there (``slots.json``) across restarts; the monitor's
    ``state.slots`` is the :class:`SlotMap` the station renumbers.
    """
    real = source is None
    if source is None:
        source = PyudevSource(sysfs_root, poll_media=True)
        mounts = mounted_devnums()
        system = frozenset(system_disks(sysfs_root, mounts, overlay_dirs()))
        ports = frozenset(
            d.usb_port
            for d in live_devices(sysfs_root, mounts)
            if d.devname in system and d.usb_port
        )
    else:
        system = ports = frozenset()
    context = Context(
        config=config, system_devices=system, system_ports=ports, is_content=is_content
    )
    policy: Callable[[UEvent], PolicyDecision | None] | None = None
    if config.usb_policy:
        policy = _report_only
        if real:
            usb = UsbPolicy(sysfs_root)
            try:
                usb.lock_down()
                policy = _enforcing(usb)
            except PolicyError as exc:
                log.error("USB policy not enforced (%s); refused devices are only reported", exc)
    store = SlotStore(state_dir) if state_dir is not None else None
    slots = SlotMap(config.slots, store)
    state = HotplugState(Classifier(context), slots, salt, policy=policy, settle=config.settle_time)
    return Monitor(source, state, callback)


def _report_only(event: UEvent) -> PolicyDecision:
    return judge_properties(dict(event.properties))


def _enforcing(usb: UsbPolicy) -> Callable[[UEvent], PolicyDecision]:
    def decide(event: UEvent) -> PolicyDecision:
        name = event.properties.get("DEVPATH", "").rsplit("/", 1)[-1]
        try:
            return usb.enforce(name)
        except PolicyError as exc:
            log.error("USB policy: %s", exc)
            return judge_properties(dict(event.properties))

    return decide
