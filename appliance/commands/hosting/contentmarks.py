"""Recognise content media before anything is wiped, without mounting a donor stick.

The hotplug classifier's ``content`` rule asks :meth:`ContentMarks.is_content`
about every disk. A disk is content media when udev's own probe of its
filesystem, or of any of its partitions, shows

* a label in ``content.labels`` (curators label the content SSD
  ``FS-CONTENT``; compared case-insensitively), or
* the UUID of a filesystem on which the station once mounted and verified a
  signed pack (remembered in ``known-content.json`` in the state dir with the
  pack's manifest hash; no serials).

Either way the disk is never a target: the station tries it as content and,
if it holds no valid pack, shows it as refused. udev's ``ID_FS_*`` come from
its read-only ``blkid`` probe, which runs for every disk anyway; this module
never opens a device.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from appliance.fileio import write_atomic
from appliance.hotplug.device import DeviceInfo, Filesystem

log = logging.getLogger(__name__)

KNOWN_FILE = "known-content.json"
#: at most this many filesystems are remembered (the oldest are dropped)
KNOWN_LIMIT = 64


class KnownContent:
    """Filesystem UUIDs that held a verified pack: ``{uuid: {manifest, seen}}`` in a JSON file."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / KNOWN_FILE
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, object]] | None = None

    def _load(self) -> dict[str, dict[str, object]]:
        if self._entries is None:
            try:
                data = json.loads(self.path.read_text())
                found = data.get("filesystems", {}) if isinstance(data, dict) else {}
                self._entries = {str(k): dict(v) for k, v in found.items() if isinstance(v, dict)}
            except FileNotFoundError:
                self._entries = {}
            except (OSError, ValueError) as exc:
                log.warning("%s unreadable (%s); starting without known content", self.path, exc)
                self._entries = {}
        return self._entries

    def uuids(self) -> set[str]:
        with self._lock:
            return set(self._load())

    def remember(self, uuids: Iterable[str], manifest_hash: str = "") -> None:
        """Record ``uuids`` as content filesystems (written atomically)."""
        with self._lock:
            entries = self._load()
            for uuid in uuids:
                if uuid:
                    entries.pop(uuid, None)
                    entries[uuid] = {"manifest": manifest_hash, "seen": int(time.time())}
            while len(entries) > KNOWN_LIMIT:
                entries.pop(next(iter(entries)))
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps({"filesystems": entries}, indent=1) + "\n")


class ContentMarks:
    """The station's ``is_content`` predicate and what to mount for a recognised disk."""

    def __init__(self, labels: Iterable[str], known: KnownContent) -> None:
        self.labels = {label.casefold() for label in labels if label}
        self.known = known
        self._lock = threading.Lock()
        #: disk device -> the filesystems udev reported on it when last classified
        self._seen: dict[str, list[Filesystem]] = {}

    def _marked(self, fs: Filesystem, known: set[str]) -> bool:
        return bool(fs.uuid and fs.uuid in known) or bool(
            fs.label and fs.label.casefold() in self.labels
        )

    def is_content(self, dev: DeviceInfo) -> bool:
        filesystems = dev.filesystems()
        with self._lock:
            self._seen[dev.devname] = filesystems
        known = self.known.uuids()
        return any(self._marked(fs, known) for fs in filesystems)

    def device_for(self, devname: str) -> str:
        """The device to mount for disk ``devname``.

        Its marked filesystem; else, when the disk has no filesystem of its own
        but exactly one partition with one (a partitioned SSD), that partition;
        else the disk itself.
        """
        with self._lock:
            filesystems = list(self._seen.get(devname, []))
        known = self.known.uuids()
        for fs in filesystems:
            if self._marked(fs, known) and fs.devname:
                return fs.devname
        partitions = [fs for fs in filesystems if fs.devname and fs.devname != devname]
        if len(partitions) == 1 and len(filesystems) == 1:
            return partitions[0].devname
        return devname

    def remember(self, disk: str, mounted: str, manifest_hash: str) -> None:
        """A pack on ``mounted`` (a filesystem of ``disk``) was verified: remember its UUID."""
        with self._lock:
            filesystems = list(self._seen.get(disk, []))
        uuids = [fs.uuid for fs in filesystems if fs.devname == mounted and fs.uuid]
        if uuids:
            self.known.remember(uuids, manifest_hash)
