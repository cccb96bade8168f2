"""The real station for ``flashstation run``: :func:`service_build` wires the hardware.

The service's own adapter (:class:`appliance.service.station_host.StationHost`)
speaks the service's interface (ledger events, status line, pause, config
errors); this module builds what it hosts: the station and runner with the
real engine (:class:`~appliance.station.adapters.EngineLoader`), and, as a
part the service starts before the station and stops after it, the
hardware: the OLED's screen thread, the buttons and LEDs, the hotplug
monitor and the content SSD. It lives with the commands because it wires
every layer; it adds no sub-command.

Content SSD detection: a disk the hotplug classifier refuses as a disk
(larger than ``hotplug.max_size``, or behind a SATA bridge) while no content
is in is mounted read-only (``CommandMounter``: ro,nosuid,nodev,noexec) and
opened as a pack; if it holds no signed pack it is shown as refused. Donated
sticks are never mounted. The classifier's ``content`` rule also marks a disk
as content media when udev saw a ``content.labels`` filesystem label or the
UUID of a filesystem that once held a verified pack on it
(:mod:`.contentmarks`): such a disk is tried the same way and never wiped.

``content.ports`` (opt-in; empty means any port): the USB ports where a
content SSD may be mounted at all. A candidate or marked disk on any other
port (or on no USB port) is never mounted, whatever its label or remembered
UUID (a USB device can claim any size, bridge, model, label or UUID, and the
kernel would parse its filesystem before the pack's signature is checked): it
is shown as refused ("Content SSD goes in the content port") and, not being a
``target``, is never loaded or wiped.

The ledger (the service's) feeds the totals screen (:func:`totals_feed`), and
START on that screen writes the ledger's report onto the content SSD
(:func:`report_exporter`).

MENU held on the station: every job is cancelled by the station itself, then
the service is asked to shut down (``ServiceContext.request_shutdown``): it
stops in order, which records the cancellations in the ledger and closes it,
then tells the station (``ServiceStopped``: the screen says "Safe to unplug",
kept on the OLED after the process ends) and powers the Pi off
(:mod:`appliance.service.poweroff`); a refused power-off is shown
(``PowerOffFailed``) and the service is not restarted.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from appliance.config.schema import DisplayConfig, StationConfig
from appliance.content.errors import PackError
from appliance.content.inserted import InsertedContent, insert
from appliance.content.mount import CommandMounter
from appliance.content.pack import Pack
from appliance.engine import LoadOptions
from appliance.hotplug import events as hp
from appliance.hotplug.classify import Verdict
from appliance.hotplug.device import usb_port_from_id_path
from appliance.hotplug.factory import make_monitor
from appliance.service.app import Component, ServiceContext, StationBuild
from appliance.service.interface import JobFinished, StationEvent
from appliance.service.ledger import load_salt
from appliance.service.report import Mount, SystemMount, export_report
from appliance.service.station_host import StationHost
from appliance.station import events as ev
from appliance.station.adapters import EngineLoader, content_callbacks, from_hotplug
from appliance.station.machine import Snapshot, Station
from appliance.station.ports import Post
from appliance.station.runtime import StationRunner
from appliance.ui.display import ScreenThread, make_device

from .contentmarks import ContentMarks, KnownContent

log = logging.getLogger(__name__)
#: hidden, so the pack's listing skips it: never an "extra" file, never loaded onto a stick
CONTENT_REPORT_FOLDER = ".flashstation-reports"
CONTENT_CANDIDATE_RULES = frozenset({"too_large", "ata_bridge", "disk_model", "spinning"})


class StationHardware:
    """Screen, buttons, LEDs, hotplug and the content SSD around one station."""

    def __init__(self, config: StationConfig, state_dir: Path, station: Station) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        self.station = station
        self.content: InsertedContent | None = None
        self.content_disk: str | None = None
        self.marks = ContentMarks(config.content.labels, KnownContent(self.state_dir))
        #: ``content.ports``: the only USB ports where a disk is mounted as content (empty: any)
        self.content_ports = frozenset(p.strip() for p in config.content.ports if p.strip())
        for port in sorted(self.content_ports):
            if usb_port_from_id_path(port) != port:  # a typo: no disk would ever match it
                log.error(
                    "content.ports: %r is not a USB port path (like the PORT column of "
                    "'flashstation devices list'); no content SSD can be mounted there",
                    port,
                )
        self.screen: ScreenThread | None = None
        self.buttons: Any = None
        self.indicator: Any = None
        self.monitor: Any = None
        self.menu_shutdown = False
        self._to_station = from_hotplug(self.post)
        #: the hotplug monitor's slot map (None until started, or without a real monitor)
        self.slot_map: Any = None

    def post(self, event: ev.Event) -> None:
        """Always through ``station.post`` as it is now (the service's host wraps it)."""
        if isinstance(event, ev.MenuHeld):
            self.menu_shutdown = True
        self.station.post(event)

    # -- what the engine needs -------------------------------------------------------------------

    def source(self) -> Any:
        content = self.content
        return content.source if content is not None and content.ready else None

    def observer(self) -> Any:
        content = self.content
        if content is not None and isinstance(content.source, Pack):
            return content.source.stream_checker()
        return None

    def protect(self) -> list[Path]:
        return [self.content.root] if self.content is not None else []

    # -- the content SSD -------------------------------------------------------------------------

    def number(self, slot: int | None, port: str | None) -> int | None:
        """A slot number for showing a disk as refused.

        Hotplug gives a possible content SSD's port no number of its own (the SSD
        would hold it for good); a disk shown as refused gets one now.
        """
        if slot is None and port is not None and self.slot_map is not None:
            return int(self.slot_map.slot_for(port))
        return slot

    def content_port(self, port: str | None) -> bool:
        """Whether a disk on USB ``port`` may be mounted as content (``content.ports``)."""
        return not self.content_ports or (port is not None and port in self.content_ports)

    def _try_content(
        self,
        devname: str,
        slot: int | None,
        reason: str,
        marked: bool = False,
        port: str | None = None,
    ) -> None:
        if not self.content_port(port):  # on_hotplug refused it already: never mount it
            log.error("%s: not on a content port; not mounted", devname)
            return
        callbacks = content_callbacks(self.post)
        device = self.marks.device_for(devname)
        try:
            inserted = insert(
                device,
                CommandMounter(),
                self.config.content,
                self.state_dir,
                on_progress=callbacks["on_progress"],
                on_done=callbacks["on_done"],
            )
        except PackError as exc:
            log.warning("%s is not a content SSD: %s", devname, exc)
            code = "too_large"
            if marked:  # a stick-sized drive may carry the label: not "a disk"
                code, reason = "other", f"labelled as content but no valid pack ({exc})"
            slot = self.number(slot, port)
            if slot is not None:
                self.post(ev.DeviceRejected(slot, code, reason, port=port or ""))
            return
        self.content_disk = devname
        self.content = inserted
        source = inserted.source
        if isinstance(source, Pack):
            try:
                self.marks.remember(devname, device, source.manifest_hash)
            except OSError as exc:
                log.warning("cannot remember the content filesystem: %s", exc)
            m = source.manifest
            tiers = tuple(
                (t.name, t.min_capacity, sum(f.size for f in m.tier_files(i)))
                for i, t in enumerate(source.tiers())
            )
            self.post(ev.ContentInserted(m.title, m.version, tiers))
        else:
            self.post(ev.ContentInserted(str(inserted.root.name), "", ()))
            self.post(ev.ContentVerified())

    def on_hotplug(self, event: hp.HotplugEvent) -> None:
        """The hotplug monitor's callback (its thread): content SSD here, drives to the station."""
        content = self.content
        marked = isinstance(event, hp.DriveArrived) and event.decision.verdict is Verdict.CONTENT
        if (
            isinstance(event, hp.DriveArrived)
            and (marked or event.decision.rule in CONTENT_CANDIDATE_RULES)
            and not self.content_port(event.port)
        ):
            log.warning(
                "%s on port %s: a disk outside content.ports (%s); not mounted",
                event.devname,
                event.port or "(none)",
                event.decision.rule,
            )
            slot = self.number(event.slot, event.port)
            if slot is not None:
                reason = "a disk outside content.ports"
                self.post(ev.DeviceRejected(slot, "content_port", reason, port=event.port or ""))
            return
        if (
            isinstance(event, hp.DriveArrived)
            and marked
            and content is not None
            and event.devname != self.content_disk
        ):
            slot = self.number(event.slot, event.port)
            if slot is not None:
                reason = "content media; another is in use"
                self.post(ev.DeviceRejected(slot, "other", reason, port=event.port or ""))
            return
        if (
            isinstance(event, hp.DriveArrived)
            and (event.decision.rule in CONTENT_CANDIDATE_RULES or marked)
            and content is None
        ):
            args = (event.devname, event.slot, event.decision.reason, marked, event.port)
            threading.Thread(target=self._try_content, args=args, daemon=True).start()
            return
        if (
            isinstance(event, hp.DriveGone)
            and content is not None
            and event.devname in (content.device, self.content_disk)
        ):
            self.content = None
            self.content_disk = None
            threading.Thread(target=content.close, name="content-close", daemon=True).start()
            self.post(ev.ContentRemoved())
            return
        arrived = isinstance(event, hp.DriveArrived) or (
            isinstance(event, hp.MediaChanged) and event.present
        )
        if arrived and event.slot is None:  # a disk the station shows as refused: numbered now
            event = replace(event, slot=self.number(None, event.port))
        self._to_station(event)

    # -- life ------------------------------------------------------------------------------------

    def start(self, runner: StationRunner) -> None:
        ui = self.config.ui
        try:
            device = make_device(ui.display)
        except Exception as exc:  # no I2C bus or no screen: carry on without it
            log.error("display %s not available (%s): no screen", ui.display.driver, exc)
            device = make_device(DisplayConfig(driver="dummy"))
        self.screen = ScreenThread(device, ui).start()
        runner.observers.append(self.screen.show)
        try:
            from appliance.ui.buttons import Buttons, GpioIndicator

            self.buttons = Buttons(ui.buttons, self.post)
            if ui.leds or ui.buzzer is not None:
                self.indicator = GpioIndicator(ui)
                runner.indicator = self.indicator
        except Exception as exc:  # not a Pi (no GPIO): no buttons
            log.error("buttons not available (%s)", exc)
        try:
            salt = load_salt(self.state_dir)
            self.monitor = make_monitor(
                self.config.hotplug,
                self.on_hotplug,
                salt,
                is_content=self.marks.is_content,
                state_dir=self.state_dir,
            )
            state = getattr(self.monitor, "state", None)
            if state is not None:  # MENU "Number the ports" renumbers the monitor's map
                self.slot_map = state.slots
                runner.slot_numbers = state.slots
            self.monitor.start()
        except Exception as exc:
            log.error("hotplug monitor not started: %s", exc)

    def show_last(self, snapshot: Snapshot) -> None:
        """After the screen thread has ended: draw ``snapshot`` and keep it on the OLED.

        luma blanks the display when the process exits unless ``persist`` is set; a Pi 4
        (bootloader default ``POWER_OFF_ON_HALT=0``) keeps the 3.3 V rail, the OLED's
        supply, on after it halts, so the frame drawn here is what the operator reads
        until the plug is pulled.
        """
        screen = self.screen
        if screen is None:
            return
        try:
            screen.draw(snapshot)
            # it may stay up for hours if nobody pulls the plug: dimmed, it still reads
            # in a room and does not burn into the OLED
            screen.dim()
            screen.device.persist = True
        except Exception:
            log.exception("cannot draw the last frame")

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        if self.buttons is not None:
            self.buttons.close()
        if self.screen is not None:
            self.screen.close()
        if self.content is not None:
            self.content.close()


def build(
    config: StationConfig,
    state_dir: Path,
    wait_turn: Callable[[threading.Event], bool] | None = None,
    request_shutdown: Callable[[], None] | None = None,
) -> tuple[StationHost, StationHardware]:
    """The hosted station and its hardware, not started.

    ``wait_turn`` (the service's ``Stagger.wait_turn``) spaces the sticks' starts;
    None starts a batch's sticks together, sharing one read of the content.
    ``request_shutdown`` (the service's) is called when MENU was held; without a
    service, SIGTERM to this process stops it.
    """
    s = config.station
    station = Station(
        s.slots,
        s.feeding,
        s.batch_window,
        clock=time.monotonic,
        fixed_slots=frozenset(config.hotplug.slots.values()),
    )
    hardware = StationHardware(config, state_dir, station)
    e = config.engine
    loader = EngineLoader(
        hardware.source,
        LoadOptions(
            wipe=e.wipe,
            chunk_size=e.chunk_size,
            buffer_budget=e.buffer_budget,
            min_capacity=e.min_capacity,
            probe_points=e.probe_points,
        ),
        headroom=config.content.headroom,
        observer=hardware.observer,
        protect=hardware.protect,
        wait_turn=wait_turn,
    )
    runner = StationRunner(station, loader)
    host = StationHost(runner)

    def menu_shutdown() -> None:
        if not hardware.menu_shutdown:  # the service itself is stopping the station
            return
        if request_shutdown is not None:
            log.info("shutdown asked on the station: stopping the service, then power-off")
            request_shutdown()
        else:
            log.info("shutdown asked on the station: stopping this process")
            os.kill(os.getpid(), signal.SIGTERM)

    runner.shutdown_hooks.append(menu_shutdown)
    return host, hardware


def service_build(context: ServiceContext) -> StationBuild:
    """What ``flashstation run`` hosts: the station, with its hardware as a part started first."""
    stagger = context.stagger
    wait_turn = stagger.wait_turn if stagger.delay > 0 else None
    host, hardware = build(
        context.config, context.ledger.state_dir, wait_turn, context.request_shutdown
    )
    runner = host.runner

    def on_stopped(powering_off: bool) -> None:
        """The ledger is closed: safe to unplug (the service's thread; the runner has ended)."""
        hardware.show_last(runner.apply_after_close(ev.ServiceStopped(powering_off)))

    def on_poweroff_failed(reason: str) -> None:
        hardware.show_last(runner.apply_after_close(ev.PowerOffFailed(reason)))

    build_ = StationBuild(
        host,
        [
            Component("station hardware", lambda: hardware.start(runner), hardware.stop),
            totals_feed(context, host),
        ],
        on_stopped=on_stopped,
        on_poweroff_failed=on_poweroff_failed,
    )
    loader = runner.loader
    busy = loader.busy if isinstance(loader, EngineLoader) else None
    runner.report_exporter = report_exporter(context, hardware, busy=busy)
    return build_


def report_exporter(
    context: ServiceContext,
    hardware: StationHardware,
    mount_for: Callable[[Path], Mount] = SystemMount,
    busy: Callable[[], bool] | None = None,
) -> Callable[[Post], None]:
    """START on the totals screen: the ledger's report onto the content SSD.

    Runs on its own thread (the runner starts it): the SSD, kept read-only, is
    remounted read-write only for the write and read-only again after it
    (``service.report.export_report``); the outcome goes back as an event.

    The station asks for it only while no stick is loading; ``busy`` (the engine
    loader's) checks once more, because a cancelled or pulled stick's slot is
    free at once while its engine batch may still be winding down on the SSD:
    then nothing is remounted and the outcome is ``busy``.
    """

    def export(post: Post) -> None:
        content = hardware.content
        if content is None:
            post(ev.ReportExported("no_content"))
            return
        if not content.ready:  # inserted; its check is still reading it
            post(ev.ReportExported("checking"))
            return
        if busy is not None and busy():
            log.info("report export refused: the engine is still reading the content SSD")
            post(ev.ReportExported("busy"))
            return
        try:
            written = export_report(
                context.ledger, mount_for(content.root), folder=CONTENT_REPORT_FOLDER
            )
        except Exception as exc:
            log.error("report export failed: %s", exc)
            post(ev.ReportExported("failed"))
            return
        log.info("report exported to the content SSD: %s", ", ".join(p.name for p in written))
        post(ev.ReportExported("saved"))

    return export


def totals_feed(context: ServiceContext, host: StationHost) -> Component:
    """The totals screen fed from the ledger, so its numbers survive a restart.

    Read once at start (the service's thread) and again after each finished job
    is recorded (the ledger writer's thread): never on the station or UI thread.
    """

    def refresh(event: StationEvent) -> None:
        if isinstance(event, JobFinished):
            host.show_totals(context.totals())

    def start() -> None:
        host.show_totals(context.totals())
        context.after_record.append(refresh)

    def stop() -> None:
        if refresh in context.after_record:
            context.after_record.remove(refresh)

    return Component("ledger totals", start, stop)
