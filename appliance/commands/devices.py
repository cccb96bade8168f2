"""``flashstation devices list|classify``: what would the station do with each device?

``list`` classifies every block device of this machine (read-only: it reads
udev, ``/sys`` and ``/proc``; no device is ever opened). ``classify`` runs
the same rules on saved ``udevadm info`` dumps, so an operator or developer
can check a device from a bug report or another machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from appliance.config import load_layers
from appliance.config.schema import StationConfig
from appliance.errors import UsageError
from appliance.hotplug.classify import Classifier, Context
from appliance.hotplug.device import DeviceInfo
from appliance.hotplug.props import read_dump
from appliance.hotplug.sysinfo import live_devices, mounted_devnums, system_disks
from appliance.units import format_size, parse_size


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


def _config(args: argparse.Namespace) -> StationConfig:
    return load_layers(args.config) if args.config else StationConfig()


def classify_command(args: argparse.Namespace) -> int:
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
    config = _config(args)
    mounts = mounted_devnums()
    devices = sorted(live_devices(mounts=mounts), key=lambda d: d.devname)
    system = frozenset(system_disks(mounts=mounts))
    ports = frozenset(d.usb_port for d in devices if d.devname in system and d.usb_port)
    classifier = Classifier(
        Context(config=config.hotplug, system_devices=system, system_ports=ports)
    )
    rows = []
    for dev in devices:
        decision = classifier.classify(dev)
        rows.append(
            {
                "device": dev.devname,
                "size": dev.size,
                "model": dev.label(),
                "port": dev.usb_port,
                **decision.as_dict(),
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    _table(rows)
    return 0


def _table(rows: list[dict[str, Any]]) -> None:
    headers = ("DEVICE", "SIZE", "VERDICT", "RULE", "REASON")
    cells = [
        (
            str(r["device"]),
            "?" if r["size"] is None else format_size(int(r["size"])),
            str(r["verdict"]),
            str(r["rule"]),
            str(r["reason"]),
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
