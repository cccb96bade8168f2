"""The service: start everything in order, run the main loop, stop in reverse.

Shaped like Mopidy's ``server.command``: components start one by one
(ledger → the station's parts: hardware factories → hotplug → engine → UI →
the station itself → power monitor → watchdog) and whatever started is stopped
in reverse order in a ``finally``, even when a later start failed or a signal
arrived. The ledger is opened first (which runs recovery before any job can
start) and closed last (so the cancellations of a stopping station are
recorded).

The main loop runs in the main thread, ticking every ``loop_period``: it beats
the watchdog heartbeat, mirrors the station's summary line to ``STATUS=``,
polls the power flags, and handles what the signal handlers only flagged
(SIGTERM/SIGINT: stop; SIGUSR1: log every thread's stack and the state), so no
lock is ever taken inside a signal handler.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from appliance.config import StationConfig
from appliance.config.loader import ConfigProblem
from appliance.service.interface import Station, StationEvent
from appliance.service.ledger import Ledger, LedgerWriter, Totals
from appliance.service.notify import Notifier
from appliance.service.power import PowerMonitor, Reader, Stagger, throttled_reader
from appliance.service.poweroff import (
    EXIT_POWEROFF_FAILED,
    EXIT_SHUT_DOWN,
    PowerOff,
    PowerOffError,
    SystemctlPowerOff,
    poweroff_refusal,
)
from appliance.service.settings import LoadedConfig
from appliance.service.watchdog import Heartbeat, Watchdog

log = logging.getLogger(__name__)


@dataclass
class Component:
    """Something with an ordered start and stop (a thin adapter; no base class needed)."""

    name: str
    start: Callable[[], None]
    stop: Callable[[], None]


@dataclass
class ServiceContext:
    """What the service hands to the station factory."""

    config: StationConfig
    ledger: Ledger
    stagger: Stagger  # call ``wait_turn()`` before each job starts writing
    config_error: tuple[str, str] | None  # (title, detail) for the error screen, or None
    config_problem: ConfigProblem | None = None  # the first problem of a bad config file
    config_source: str = "files"  # the values in use: "files", "last good" or "defaults"
    salt: bytes = b""  # the station's salt, for hotplug's drive ids (same as the ledger's)
    #: called on the ledger's writer thread after each station event is recorded
    after_record: list[Callable[[StationEvent], None]] = field(default_factory=list)
    #: the operator asked for a shutdown (MENU held): stop in order, then power off
    request_shutdown: Callable[[], None] = lambda: None

    def totals(self, since: datetime | None = None) -> Totals:
        """The statistics screen's numbers (since start of the ledger, or ``since``)."""
        return self.ledger.totals(since)


@dataclass
class StationBuild:
    """What a station factory returns: its parts in start order, and the station.

    After an operator shutdown, once everything has stopped and the ledger is closed,
    the service calls ``on_stopped(powering_off)`` (the screen says it is safe to
    unplug) and, if the power-off is refused, ``on_poweroff_failed(reason)``.
    """

    station: Station
    parts: Sequence[Component] = field(default_factory=list)
    on_stopped: Callable[[bool], None] | None = None
    on_poweroff_failed: Callable[[str], None] | None = None


StationFactory = Callable[[ServiceContext], StationBuild]


class Service:
    def __init__(
        self,
        loaded: LoadedConfig,
        station_factory: StationFactory,
        *,
        notifier: Notifier | None = None,
        power_reader: Reader | None = None,
        loop_period: float = 0.5,
        state_dir: Path | None = None,
        power_off: PowerOff | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.station_factory = station_factory
        self.notifier = notifier or Notifier()
        service = self.config.service
        self.power_reader = power_reader or throttled_reader(service.throttled_path)
        self.loop_period = loop_period
        self.state_dir = Path(state_dir or service.state_dir)
        self.power_off: PowerOff = power_off or SystemctlPowerOff()
        self.environ = os.environ if environ is None else environ
        self.heartbeat = Heartbeat()
        self.stop_requested = threading.Event()
        self.shutdown_requested = threading.Event()
        self.build: StationBuild | None = None
        self._dump_requested = threading.Event()
        self.ledger: Ledger | None = None
        self.writer: LedgerWriter | None = None
        self.station: Station | None = None
        self.power: PowerMonitor | None = None
        self.watchdog: Watchdog | None = None
        self.started: list[str] = []

    # -- signals --------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        self.stop_requested.set()

    def request_shutdown(self) -> None:
        """The operator held MENU: stop in order, then power off (any thread)."""
        log.info("shutdown asked on the station")
        self.shutdown_requested.set()
        self.stop_requested.set()

    def request_dump(self, *_: Any) -> None:
        self._dump_requested.set()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old: dict[int, Any] = {}
        for signum, handler in (
            (signal.SIGTERM, self.request_stop),
            (signal.SIGINT, self.request_stop),
            (signal.SIGUSR1, self.request_dump),
        ):
            old[signum] = signal.signal(signum, handler)
        return old

    # -- components -------------------------------------------------------------------

    def _open_ledger(self) -> None:
        self.ledger = Ledger(self.state_dir, self.config.service.ledger_time_resolution)
        self.writer = LedgerWriter(self.ledger)

    def _close_ledger(self) -> None:
        if self.writer is not None:
            self.writer.stop()  # everything the stopping station reported is recorded
        if self.ledger is not None:
            self.ledger.close()

    def _build_station(self) -> list[Component]:
        assert self.ledger is not None
        context = ServiceContext(
            self.config,
            self.ledger,
            Stagger(self.config.service.stagger),
            self.loaded.error_screen(),
            self.loaded.first_problem,
            self.loaded.source,
            self.ledger.salt,
            self.writer.after if self.writer is not None else [],
            self.request_shutdown,
        )
        build = self.station_factory(context)
        self.build = build
        self.station = build.station
        assert self.writer is not None
        self.station.add_listener(self.writer.send)
        station = self.station

        def start_station() -> None:
            station.start()
            if context.config_problem is not None:
                station.show_config_error(context.config_problem, context.config_source)

        return [*build.parts, Component("station", start_station, station.stop)]

    def _start_power(self) -> None:
        station = self.station
        pause = self.config.service.pause_on_undervoltage

        def changed(reason: str | None) -> None:
            if station is not None and pause:
                station.set_paused(reason)

        self.power = PowerMonitor(self.power_reader, changed)

    def _start_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval:
            self.watchdog = Watchdog(self.notifier, self.heartbeat, interval)
            self.watchdog.start()
            log.info("watchdog: petting every %.1f s while the main loop runs", interval / 4)

    def _stop_watchdog(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()

    def _start(self, component: Component, started: list[Component]) -> None:
        log.info("starting %s", component.name)
        component.start()
        started.append(component)
        self.started.append(component.name)

    # -- the run ------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT or :meth:`request_stop`; returns the exit status."""
        old_signals = self._install_signals()
        started: list[Component] = []
        status = 0
        try:
            self._start(Component("ledger", self._open_ledger, self._close_ledger), started)
            for component in self._build_station():
                if self.stop_requested.is_set():
                    break
                self._start(component, started)
            self._start(Component("power", self._start_power, lambda: None), started)
            self._start(Component("watchdog", self._start_watchdog, self._stop_watchdog), started)
            if not self.stop_requested.is_set():
                self.notifier.ready(self._status_line())
                log.info("flashstation running")
            self._loop()
        except Exception:
            log.exception("the service failed")
            status = 1
        finally:
            self.notifier.stopping()
            for component in reversed(started):
                log.info("stopping %s", component.name)
                try:
                    component.stop()
                except Exception:
                    log.exception("stopping %s failed", component.name)
            for signum, handler in old_signals.items():
                signal.signal(signum, handler)
            if self.shutdown_requested.is_set():
                status = self._end_shutdown()
            log.info("flashstation stopped")
        return status

    def _end_shutdown(self) -> int:
        """After an operator shutdown: everything stopped and the ledger closed; power off.

        Returns the exit status the unit never restarts on (``RestartPreventExitStatus=``),
        so a refused power-off leaves its message on the screen instead of the main one.
        """
        refusal = poweroff_refusal(self.config.service, self.environ)
        if refusal is not None:
            log.info("shutdown from the station: stopped; not powering off (%s)", refusal)
        self._tell_station("on_stopped", refusal is None)
        if refusal is not None:
            self.notifier.status("shut down from the station: safe to unplug")
            return EXIT_SHUT_DOWN
        log.info("shutdown from the station: the ledger is closed; powering off")
        try:
            self.power_off()
        except Exception as exc:  # PowerOffError, or a broken injected command
            reason = str(exc) if isinstance(exc, PowerOffError) else repr(exc)
            log.error("power-off failed: %s; the station stays stopped (unplug it)", reason)
            self.notifier.status(f"power-off failed: {reason}")
            self._tell_station("on_poweroff_failed", reason)
            return EXIT_POWEROFF_FAILED
        self.notifier.status("shut down from the station: powering off")
        return EXIT_SHUT_DOWN

    def _tell_station(self, name: str, arg: object) -> None:
        hook = getattr(self.build, name, None) if self.build is not None else None
        if hook is None:
            return
        try:
            hook(arg)
        except Exception:  # the screen is a courtesy here: the power-off must still happen
            log.exception("%s failed", name)

    def _status_line(self) -> str:
        line = self.station.status_line() if self.station is not None else "starting"
        if self.power is not None and self.power.flags is not None:
            extra = self.power.flags.describe()
            if extra and extra not in line:
                line = f"{line} [{extra}]"
        return line

    def _loop(self) -> None:
        poll_every = self.config.service.power_poll
        next_poll = 0.0
        while not self.stop_requested.is_set():
            now = time.monotonic()
            if self.power is not None and now >= next_poll:
                self.power.poll()
                next_poll = now + poll_every
            self.notifier.status(self._status_line())  # proves the station answers
            self.heartbeat.beat()
            if self._dump_requested.is_set():
                self._dump_requested.clear()
                self.dump_state()
            self.stop_requested.wait(self.loop_period)
        if self._dump_requested.is_set():  # SIGUSR1 just before SIGTERM: still answered
            self._dump_requested.clear()
            self.dump_state()

    def dump_state(self) -> None:
        """SIGUSR1: every thread's stack, the station's jobs and the ledger totals."""
        frames = sys._current_frames()
        parts = ["state dump (SIGUSR1)", f"status: {self._status_line()}"]
        if self.station is not None:
            for job in self.station.snapshot():
                parts.append(
                    f"slot {job.slot}: {job.job} {job.phase} {job.percent:.0f}% "
                    f"{job.capacity} bytes tier {job.tier}"
                )
        if self.ledger is not None:
            parts.append(f"ledger totals: {self.ledger.totals()}")
        if self.power is not None:
            parts.append(f"power flags: {self.power.flags}")
        for thread in threading.enumerate():
            frame: FrameType | None = frames.get(thread.ident or -1)
            stack = "".join(traceback.format_stack(frame)) if frame else "  (no frame)\n"
            parts.append(f"thread {thread.name} (daemon={thread.daemon}):\n{stack.rstrip()}")
        log.warning("\n".join(parts))
