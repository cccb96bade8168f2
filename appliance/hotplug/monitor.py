"""The hotplug monitor: a udev source, a state diff and a thread that never blocks.

A :class:`Source` yields raw :class:`~.state.UEvent`; :class:`Monitor` feeds
them to :class:`~.state.HotplugState` on its own thread and hands the
resulting events to a callback. The thread sleeps in ``select`` on the
source's file descriptor and a self-pipe, so :meth:`Monitor.stop` returns at
once (pyudev's ``MonitorObserver`` does the same). Two sources share the
interface: :class:`PyudevSource` (netlink, the real thing) and
:class:`FakeSource` (a real pipe fed by tests and the simulator).

The callback runs on the monitor thread: keep it short, or put the events
on a queue (the station's way).
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from appliance.hotplug.events import HotplugEvent
from appliance.hotplug.state import HotplugState, UEvent
from appliance.hotplug.sysinfo import (
    disk_facts,
    enable_media_polling,
    mounted_devnums,
    partition_filesystems,
)

log = logging.getLogger(__name__)


class Source(Protocol):
    def scan(self) -> Iterable[UEvent]:
        """``add`` events for everything present now (USB devices before disks)."""
        ...

    def fileno(self) -> int: ...

    def receive(self) -> list[UEvent]:
        """Every event ready now, without blocking."""
        ...

    def close(self) -> None: ...


class FakeSource:
    """A source fed by :meth:`inject`; its ``fileno`` is a real pipe, so select works."""

    def __init__(self, present: Iterable[UEvent] = ()):
        self._present = list(present)
        self._queue: deque[UEvent] = deque()
        self._lock = threading.Lock()
        self._read, self._write = os.pipe()
        self._closed = False
        os.set_blocking(self._read, False)

    def scan(self) -> list[UEvent]:
        return list(self._present)

    def inject(self, *events: UEvent) -> None:
        with self._lock:
            self._queue.extend(events)
        os.write(self._write, b"!")

    def fileno(self) -> int:
        return self._read

    def receive(self) -> list[UEvent]:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            events = list(self._queue)
            self._queue.clear()
        return events

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._read)
            os.close(self._write)


class PyudevSource:
    """udev over netlink via pyudev: ``block`` and ``usb`` events only.

    With ``poll_media`` (the station's setting, never the tests') removable
    disks get kernel media polling switched on, so card insertions in a
    reader produce ``change`` events.
    """

    def __init__(self, sys_root: str | Path = "/sys", poll_media: bool = False):
        import pyudev

        self.sys_root = sys_root
        self.poll_media = poll_media
        self.context = pyudev.Context()
        self.monitor = pyudev.Monitor.from_netlink(self.context)
        self.monitor.filter_by("block")
        self.monitor.filter_by("usb")
        self.monitor.start()

    def _event(self, action: str, device: Any) -> UEvent:
        props = {str(k): str(v) for k, v in device.properties.items()}
        if props.get("SUBSYSTEM") != "block" or action == "remove":
            return UEvent(action, props)
        if self.poll_media and action == "add":
            enable_media_polling(device.sys_name, self.sys_root)
        facts = disk_facts(device.sys_name, self.sys_root, mounted_devnums())
        size = facts["size"]
        return UEvent(
            action,
            props,
            size=size if isinstance(size, int) else None,
            mounted=bool(facts["mounted"]),
            holders=bool(facts["holders"]),
            partitions=partition_filesystems(device),
        )

    def scan(self) -> Iterator[UEvent]:
        # list_devices ORs its keyword filters, so filter the device type here.
        for device in self.context.list_devices(subsystem="usb"):
            if device.device_type == "usb_device":
                yield self._event("add", device)
        for device in self.context.list_devices(subsystem="block"):
            if device.device_type == "disk":
                yield self._event("add", device)

    def fileno(self) -> int:
        return int(self.monitor.fileno())

    def receive(self) -> list[UEvent]:
        events = []
        while (device := self.monitor.poll(timeout=0)) is not None:
            events.append(self._event(device.action or "change", device))
        return events

    def close(self) -> None:
        pass


class Monitor:
    """Runs a source into a state on a daemon thread; events go to ``callback``."""

    def __init__(
        self,
        source: Source,
        state: HotplugState,
        callback: Callable[[HotplugEvent], None],
    ):
        self.source = source
        self.state = state
        self.callback = callback
        self.processed = 0
        self._changed = threading.Condition()
        self._stop_read, self._stop_write = os.pipe()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="hotplug-monitor", daemon=True)

    def _emit(self, out: Iterable[HotplugEvent]) -> None:
        for event in out:
            try:
                self.callback(event)
            except Exception:
                log.exception("hotplug: event handler failed on %s", event.kind)

    def _feed(self, events: Iterable[UEvent], settle: bool = True) -> None:
        for raw in events:
            try:
                out = self.state.apply(raw, settle=settle)
            except Exception:  # one bad event must not stop the monitor
                log.exception("hotplug: cannot handle %r", raw)
                out = []
            self._emit(out)
            with self._changed:
                self.processed += 1
                self._changed.notify_all()

    def start(self) -> None:
        """Apply the initial scan (its events reach the callback now), then watch."""
        self._feed(self.source.scan(), settle=False)
        self._thread.start()

    def _timeout(self) -> float | None:
        deadline = self.state.next_deadline()
        return None if deadline is None else max(0.0, deadline - self.state.clock())

    def _run(self) -> None:
        fd = self.source.fileno()
        while True:
            ready, _, _ = select.select([fd, self._stop_read], [], [], self._timeout())
            if self._stop_read in ready:
                return
            if fd in ready:
                self._feed(self.source.receive())
            self._emit(self.state.due())

    def wait_processed(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` raw events have been handled (tests, the simulator)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.processed >= count, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Wake the thread through the self-pipe and wait for it; safe to call twice."""
        if self._closed:
            return
        if self._thread.is_alive():
            os.write(self._stop_write, b"x")
            self._thread.join(timeout)
        self._closed = True
        self.source.close()
        os.close(self._stop_read)
        os.close(self._stop_write)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
