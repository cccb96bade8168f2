"""``flashstation slots learn|show|hubs``: number the hub's ports.

``learn`` asks the operator to plug a stick into each port in order and
saves ``hotplug.slots`` to a small override file; ``show`` prints the map a
configuration gives; ``hubs`` lists hubs that can switch port power
(``uhubctl``; optional).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from appliance.config import load_layers
from appliance.config.schema import StationConfig
from appliance.errors import UsageError

# The hotplug package is imported inside the handlers (CLI start-up stays light).
if TYPE_CHECKING:
    from appliance.hotplug.monitor import Source

DEFAULT_OUTPUT = "/etc/flashstation/station.yaml"


def make_source() -> Source:
    """The udev source ``learn`` listens to (tests replace it with a fake)."""
    from appliance.hotplug.monitor import PyudevSource

    return PyudevSource()


def register(sub: Any) -> None:
    parser = sub.add_parser("slots", help="number the USB ports (slots)")
    slots_sub = parser.add_subparsers(dest="slots_command", metavar="ACTION", required=True)
    learn = slots_sub.add_parser("learn", help="plug a stick into each port in order")
    learn.add_argument("--count", type=int, help="number of ports (default: until 'done')")
    learn.add_argument(
        "-o",
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="FILE",
        help=f"override file to write hotplug.slots into (default {DEFAULT_OUTPUT})",
    )
    learn.set_defaults(handler=learn_command)
    show = slots_sub.add_parser("show", help="print the slot map of the configuration")
    show.add_argument("-c", "--config", action="append", default=[], metavar="FILE")
    show.set_defaults(handler=show_command)
    hubs = slots_sub.add_parser("hubs", help="hubs with per-port power switching (uhubctl)")
    hubs.set_defaults(handler=hubs_command)


def learn_command(args: argparse.Namespace) -> int:
    from appliance.hotplug.learn import learn_slots, write_slots

    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    source = make_source()

    def ask(prompt: str) -> str:
        print(prompt, end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line

    learned = learn_slots(source, ask, print, count=args.count)
    if not learned:
        print("No slots learned; nothing written.")
        return 1
    write_slots(args.output, learned)
    load_layers([args.output])  # the file must pass `config check`
    print(f"{len(learned)} slot{'s' * (len(learned) != 1)} written to {args.output}")
    return 0


def show_command(args: argparse.Namespace) -> int:
    config = load_layers(args.config) if args.config else StationConfig()
    slots = config.hotplug.slots
    if not slots:
        print("No slots learned: ports are numbered in the order sticks first appear.")
        return 0
    for port, number in sorted(slots.items(), key=lambda item: item[1]):
        print(f"slot {number:>2}  {port}")
    return 0


def hubs_command(args: argparse.Namespace) -> int:
    from appliance.hotplug import uhubctl

    hubs = uhubctl.detect()
    if not hubs:
        print("No hub with per-port power switching found (uhubctl missing or no such hub).")
        return 0
    for hub in hubs:
        print(f"hub {hub.location}  [{hub.usb_id}]  {hub.ports} ports, per-port power")
    return 0
