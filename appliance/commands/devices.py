"""``flashstation devices list|classify``: what would the station do with each device?

``list`` classifies every block device of this machine (read-only: it reads
udev, ``/sys`` and ``/proc``; no device is ever opened). ``classify`` runs
the same rules on saved ``udevadm info`` dumps, so an operator or developer
can check a device from a bug report or another machine.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time
from typing import TYPE_CHECKING, Any

from appliance.config import load_layers
from appliance.config.schema import StationConfig
from appliance.errors import UsageError
from appliance.units import format_size, parse_size

# The hotplug package is imported inside the handlers: every `flashstation`
# command builds this parser, and most never need it.
if TYPE_CHECKING:
    from appliance.hotplug.events import HotplugEvent
    from appliance.hotplug.monitor import Source
    from appliance.hotplug.state import UEvent
    from appliance.hotplug.usbpolicy import PolicyDecision


def register(sub: Any) -> None:
    parser = sub.add_parser("devices", help="classify block devices (read-only)")
    parser.add_argument(
        "-c", "--config", action="append", default=[], metavar="FILE", help="config override file"
    )
    dev_sub = parser.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    listing = dev_sub.add_parser("list", help="every block device here, with verdict and reason")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=list_command)
    check = dev_sub.add_parser("classify", help="classify saved `udevadm info` dumps")
    check.add_argument("dumps", nargs="+", metavar="DUMP")
    check.add_argument("--size", metavar="BYTES", help="size the kernel reports (e.g. 16GB)")
    check.add_argument(
        "--mounted", action="store_true", help="the device or a partition is mounted"
    )
    check.add_argument(
        "--system-port",
        action="append",
        default=[],
        metavar="PORT",
        help="USB port key of the boot disk (a Pi booting from USB)",
    )
    check.set_defaults(handler=classify_command)
    watch = dev_sub.add_parser(
        "watch", help="print hotplug events as they happen (report only, changes nothing)"
    )
    watch.add_argument("--json", action="store_true", help="one JSON object per event")
    watch.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    watch.set_defaults(handler=watch_command)


def report_policy(event: UEvent) -> PolicyDecision:
    """The USB policy judged on udev's interface list only: ``watch`` never authorises."""
    from appliance.hotplug.usbpolicy import judge_properties

    return judge_properties(dict(event.properties))


def _config(args: argparse.Namespace) -> StationConfig:
    return load_layers(args.config) if args.config else StationConfig()


def classify_command(args: argparse.Namespace) -> int:
    from appliance.hotplug.classify import Classifier, Context
    from appliance.hotplug.device import DeviceInfo
    from appliance.hotplug.props import read_dump

    size = None
    if args.size is not None:
        try:
            size = parse_size(args.size)
        except ValueError as exc:
            raise UsageError(f"--size: {exc}") from None
    config = _config(args)
    classifier = Classifier(
        Context(config=config.hotplug, system_ports=frozenset(args.system_port))
    )
    for path in args.dumps:
        dev = DeviceInfo(read_dump(path), size=size, mounted=args.mounted)
        decision = classifier.classify(dev)
        print(json.dumps({"file": path, **decision.as_dict()}, ensure_ascii=False))
    return 0


def list_command(args: argparse.Namespace) -> int:
    from appliance.hotplug.classify import Classifier, Context
    from appliance.hotplug.sysinfo import (
        live_devices,
        mounted_devnums,
        overlay_dirs,
        system_disks,
    )

    config = _config(args)
    mounts = mounted_devnums()
    devices = sorted(live_devices(mounts=mounts), key=lambda d: d.devname)
    system = frozenset(system_disks(mounts=mounts, overlays=overlay_dirs()))
    ports = frozenset(d.usb_port for d in devices if d.devname in system and d.usb_port)
    classifier = Classifier(
        Context(config=config.hotplug, system_devices=system, system_ports=ports)
    )
    learned = config.hotplug.slots
    rows = []
    for dev in devices:
        decision = classifier.classify(dev)
        rows.append(
            {
                "device": dev.devname,
                "size": dev.size,
                "model": dev.label(),
                "port": dev.usb_port,
                "slot": learned.get(dev.usb_port or ""),
                **decision.as_dict(),
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    _table(rows)
    return 0


def make_watch_source() -> Source:
    """The udev source ``watch`` listens to (tests replace it with a fake)."""
    from appliance.hotplug.monitor import PyudevSource

    return PyudevSource()


def _event_row(event: HotplugEvent) -> dict[str, Any]:
    row: dict[str, Any] = {"event": event.kind, "slot": event.slot}
    for name in ("devname", "drive_id", "size", "present", "reason", "message"):
        if hasattr(event, name):
            row[name] = getattr(event, name)
    decision = getattr(event, "decision", None)
    if decision is not None:
        row.update(decision.as_dict())
    return row


def watch_command(args: argparse.Namespace) -> int:
    """Follow udev through the same state diff the station uses; never writes anything."""
    from appliance.hotplug.classify import Classifier, Context
    from appliance.hotplug.monitor import Monitor
    from appliance.hotplug.slots import SlotMap
    from appliance.hotplug.state import HotplugState
    from appliance.hotplug.sysinfo import mounted_devnums, overlay_dirs, system_disks

    config = _config(args)
    mounts = mounted_devnums()
    system = frozenset(system_disks(mounts=mounts, overlays=overlay_dirs()))
    classifier = Classifier(Context(config=config.hotplug, system_devices=system))
    state = HotplugState(
        classifier, SlotMap(config.hotplug.slots), os.urandom(16), policy=report_policy
    )
    printed: queue.Queue[HotplugEvent] = queue.Queue()
    monitor = Monitor(make_watch_source(), state, printed.put)
    monitor.start()
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            try:
                event = printed.get(timeout=0.1)
            except queue.Empty:
                continue
            row = _event_row(event)
            if args.json:
                print(json.dumps(row, ensure_ascii=False), flush=True)
            else:
                slot = "-" if row["slot"] is None else row["slot"]
                detail = row.get("message") or f"{row.get('devname', '')} {row.get('verdict', '')}"
                reason = row.get("reason", "")
                print(f"slot {slot}: {event.kind}: {detail} ({reason})".rstrip(), flush=True)
    finally:
        monitor.stop()
    return 0


def _table(rows: list[dict[str, Any]]) -> None:
    headers = ("DEVICE", "SLOT", "SIZE", "VERDICT", "RULE", "REASON", "PORT")
    cells = [
        (
            str(r["device"]),
            "-" if r["slot"] is None else str(r["slot"]),
            "?" if r["size"] is None else format_size(int(r["size"])),
            str(r["verdict"]),
            str(r["rule"]),
            str(r["reason"]),
            str(r["port"] or "-"),  # the key for hotplug.slots and content.ports
        )
        for r in rows
    ]
    widths = [
        max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    out = sys.stdout
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    for c in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip() + "\n")
