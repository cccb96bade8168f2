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
    show.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where the station remembers numbers (default: service.state_dir)",
    )
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
    from appliance.hotplug.slots import SlotMap, SlotStore

    config = load_layers(args.config) if args.config else StationConfig()
    slots = config.hotplug.slots
    state_dir = args.state_dir or config.service.state_dir
    remembered = SlotMap(slots, SlotStore(state_dir)).remembered()
    if not slots and not remembered:
        print("No slots learned: ports are numbered in the order sticks first appear.")
        return 0
    rows = [(n, p, "configured") for p, n in slots.items()]
    rows += [(n, p, "remembered") for p, n in remembered.items()]
    for number, port, source in sorted(rows):
        print(f"slot {number:>2}  {source:<10}  {port}")
    if number_limit := config.station.slots:
        beyond = sorted(n for n, _, _ in rows if n > number_limit)
        if beyond:
            print(f"(slots above {number_limit} are not on the screen: not loaded there)")
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
