"""The station with simulated hardware: what ``flashstation demo`` runs.

The real :class:`~appliance.station.machine.Station`, runner and screens;
only the edges are simulated:

- sticks are sparse image files in a temporary folder (their size is the
  capacity), plugged and pulled by script or key; a stick can claim more
  than it holds (fake capacity), fail verification, or be write-protected;
  a "keyboard" is a USB device the policy refuses;
- the content SSD is the bundled sample pack (its real title, version and
  tiers, its signature checked against the test key), verified with
  progress over a few simulated seconds;
- the loader is :class:`~appliance.station.fakes.SimLoader`, or the real
  engine on the image files once it is wired (see ``make_loader``);
- time is a manual clock in headless mode, so a scripted session gives
  the same frames on every machine.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageChops

from appliance.errors import FlashStationError
from appliance.hotplug.slots import SlotMap
from appliance.station import events as ev
from appliance.station.fakes import ManualWatcher, SimLoader, SimStick
from appliance.station.machine import Station
from appliance.station.ports import Loader
from appliance.station.runtime import StationRunner
from appliance.ui.messages import catalogue
from appliance.ui.screens import Frame, render
from appliance.units import parse_size

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE_PACK = DATA / "sample-pack"
TEST_KEY = DATA / "test-keys" / "sample-pack-TEST-ONLY.key.pub"
DEMO_SCRIPT = DATA / "demo" / "session.yaml"
STEP = 0.25  # simulated seconds per step in headless mode


def _replace_in_place(table: dict[int, Any], new: dict[int, Any]) -> None:
    for gone in [k for k in table if k not in new]:
        table.pop(gone, None)
    table.update(new)


def port_key(port: int) -> str:
    """The simulated hub's key for port ``port`` (a station's is the USB part of ID_PATH)."""
    return f"sim-hub-port-{port}"


class ScriptError(FlashStationError, ValueError):
    """A demo script that cannot be run (names the file and the step)."""


@dataclass(frozen=True)
class PackInfo:
    title: str
    version: str
    tiers: tuple[tuple[str, int, int], ...]
    files: int


def sample_pack_info(root: Path = SAMPLE_PACK) -> PackInfo:
    """Title, version and tiers of the bundled pack, its signature checked (test key)."""
    from appliance.content import load_trusted, open_pack

    pack = open_pack(root, load_trusted([TEST_KEY]))
    manifest = pack.manifest
    tiers = []
    for i, tier in enumerate(pack.tiers()):
        payload = sum(e.size for e in manifest.tier_files(i))
        tiers.append((tier.name, tier.min_capacity, payload))
    return PackInfo(manifest.title, manifest.version, tuple(tiers), len(manifest.files))


class ManualClock:
    """Simulated time: moves only when told (deterministic frames)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def wait_until(self, t: float) -> None:
        self.t = max(self.t, t)


class WallClock:
    """Real time since start (the real engine runs in real time)."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def t(self) -> float:
        return time.monotonic() - self.start

    def __call__(self) -> float:
        return self.t

    def wait_until(self, t: float) -> None:
        left = t - self.t
        if left > 0:
            time.sleep(left)


@dataclass
class _ContentSim:
    """The content SSD: inserted, verified over ``seconds``, removable, damageable."""

    info: PackInfo
    seconds: float = 4.0
    inserted_at: float | None = None
    verified: bool = False


@dataclass
class Simulator:
    slots: int = 8
    feeding: str = "auto"
    batch_window: float = 3.0
    language: str = "en"
    speed: float = 400e6
    workdir: Path | None = None
    clock: Any = field(default_factory=ManualClock)
    loader: Loader | None = None
    verify_seconds: float = 4.0
    #: use the real engine on the image files (real time, small sticks) instead of SimLoader
    engine: bool = False

    def __post_init__(self) -> None:
        self._own_dir = self.workdir is None
        self.dir = Path(self.workdir or tempfile.mkdtemp(prefix="flashstation-sim-"))
        self.station = Station(
            slots=self.slots,
            feeding=self.feeding,
            batch_window=self.batch_window,
            clock=self.clock,
        )
        self.pack = sample_pack_info()
        #: what is plugged into each simulated hub port (the script's "slot" is a port)
        self.plugged: dict[int, SimStick] = {}
        #: the same sticks by the slot number their port has now (the loaders read this)
        self.sticks: dict[int, SimStick] = {}
        self._port_of_slot: dict[int, int] = {}
        #: port numbers as on a station (not saved): port N starts as slot N, and the
        #: "Number the ports" page renumbers them
        self.slot_map = SlotMap()
        for n in range(1, self.slots + 1):
            self.slot_map.assign(port_key(n), n)
        self.sim_loader = SimLoader(tiers=self.pack.tiers, sticks=self.sticks)
        if self.engine and self.loader is None:
            self.loader = self._engine_loader()
        self.drives = ManualWatcher()
        self.content_watch = ManualWatcher()
        self.runner = StationRunner(
            self.station, self.loader or self.sim_loader, [self.drives, self.content_watch]
        )
        self.runner.slot_numbers = self.slot_map
        self.content: _ContentSim | None = None
        self.inserted: Any = None  # engine mode: the real InsertedContent (verified for real)
        self.rejected: set[int] = set()
        self.messages = catalogue(self.language)
        self.runner.open()
        self.runner.drain()

    def _engine_loader(self) -> Loader:
        from appliance.content import load_trusted, open_pack
        from appliance.drives.fake import Faults, FaultyTarget, file_target, wrap_around_target
        from appliance.engine import LoadOptions
        from appliance.station.adapters import EngineLoader
        from appliance.station.effects import JobRequest

        pack = open_pack(SAMPLE_PACK, load_trusted([TEST_KEY]))

        def source() -> Any:
            inserted = self.inserted
            return inserted.source if inserted is not None and inserted.ready else None

        def target_for(job: JobRequest) -> Any:
            stick = self.sticks[job.slot]
            path = self.image_path(self._port_of_slot.get(job.slot, job.slot))
            if stick.fake:
                return wrap_around_target(
                    path, claimed=stick.capacity, real=stick.real_capacity or 0
                )
            flip = None if stick.bad_at is None else int(stick.capacity * stick.bad_at)
            faults = Faults(read_only=stick.read_only, throttle=stick.speed, flip_on_read_at=flip)
            return FaultyTarget(file_target(path), faults)

        return EngineLoader(
            source,
            LoadOptions(wipe="full", chunk_size=1024 * 1024, progress_interval=0.2),
            target_for=target_for,
            observer=pack.stream_checker,
            protect=lambda: [SAMPLE_PACK],
        )

    # -- hardware actions ---------------------------------------------------------------------

    def image_path(self, port: int) -> Path:
        return self.dir / f"slot{port:02d}.img"

    def _number(self, port: int) -> int:
        """The port's slot number (a port seen for the first time gets the next free one)."""
        number = self.slot_map.slot_for(port_key(port))
        assert number is not None  # only a None port has none
        return number

    def _resync(self) -> None:
        """``sticks`` by the number each port has now (ports may have been renumbered)."""
        ports: dict[int, int] = {}
        for port in list(self.plugged):
            number = self.slot_map.peek(port_key(port))
            if number is not None:
                ports[number] = port
        sticks = {n: self.plugged[p] for n, p in ports.items() if p in self.plugged}
        # in place and never emptied on the way: a loader's thread may be reading them
        _replace_in_place(self.sticks, sticks)
        _replace_in_place(self._port_of_slot, ports)

    def plug(
        self,
        slot: int,
        size: int,
        real: int | None = None,
        bad_at: float | None = None,
        read_only: bool = False,
    ) -> None:
        """A stick of ``size`` bytes in port ``slot`` (a sparse image file of that size)."""
        port = slot
        if port in self.plugged or port in self.rejected:
            raise ScriptError(f"slot {port} is not empty")
        path = self.image_path(port)
        with open(path, "wb") as f:
            f.truncate(real if real is not None and self.engine else size)
        self.plugged[port] = SimStick(size, real, self.speed, read_only, bad_at)
        number = self._number(port)
        self._resync()
        self.drives.emit(ev.DriveArrived(number, size, device=str(path), port=port_key(port)))

    def keyboard(self, slot: int) -> None:
        """A keyboard-like USB device in port ``slot``: the policy refuses it."""
        port = slot
        if port in self.plugged or port in self.rejected:
            raise ScriptError(f"slot {port} is not empty")
        self.rejected.add(port)
        number = self._number(port)
        self.drives.emit(
            ev.DeviceRejected(number, "not_storage", "HID interface", port=port_key(port))
        )

    def pull(self, slot: int) -> None:
        """Pull whatever is in port ``slot``."""
        port = slot
        if port in self.rejected:
            self.rejected.discard(port)
        elif self.plugged.pop(port, None) is not None:
            self.image_path(port).unlink(missing_ok=True)
        else:
            raise ScriptError(f"slot {port} is empty")
        self._resync()
        number = self.slot_map.peek(port_key(port))
        if number is not None:  # a port whose number was cleared reports no slot (as hotplug)
            self.drives.emit(ev.DriveGone(number))

    def toggle(self, slot: int, size: int = 8 * 1000**3) -> None:
        if slot in self.plugged or slot in self.rejected:
            self.pull(slot)
        else:
            self.plug(slot, size)

    def insert_content(self) -> None:
        if self.content is not None:
            raise ScriptError("the content SSD is already in")
        self.content = _ContentSim(self.pack, self.verify_seconds, self.clock())
        p = self.pack
        self.content_watch.emit(ev.ContentInserted(p.title, p.version, p.tiers))
        if self.engine:  # the content area's real insertion: signature, background hashing
            from appliance.config.schema import ContentConfig
            from appliance.content.inserted import insert
            from appliance.content.mount import DirectoryMounter
            from appliance.station.adapters import content_callbacks

            self.content.verified = True  # progress comes from the real verifier
            self.inserted = insert(
                "sim-ssd",
                DirectoryMounter({"sim-ssd": SAMPLE_PACK}),
                ContentConfig(trusted_keys=[str(TEST_KEY)]),
                self.dir / "state",
                **content_callbacks(self.content_watch.emit),
            )

    def remove_content(self) -> None:
        if self.content is None:
            raise ScriptError("no content SSD to remove")
        self.content = None
        if self.inserted is not None:
            self.inserted.close()
            self.inserted = None
        self.content_watch.emit(ev.ContentRemoved())

    def damage_content(self) -> None:
        self.content_watch.emit(ev.ContentDamaged("영상/시험 화면.mp4"))

    def press(self, button: str) -> None:
        event = {
            "start": ev.StartPressed(),
            "cancel": ev.CancelPressed(),
            "menu": ev.MenuPressed(),
            "menu_hold": ev.MenuHeld(),
        }.get(button)
        if event is None:
            raise ScriptError(f"unknown button {button!r} (start, cancel, menu, menu_hold)")
        self.station.post(event)

    # -- time ---------------------------------------------------------------------------------

    def tick(self, drain: bool = True) -> None:
        """Let the simulated hardware report up to now, then apply everything queued.

        ``drain=False`` when the runner has its own station thread (bench, service).
        """
        now = self.clock()
        c = self.content
        if c is not None and not c.verified and c.inserted_at is not None:
            fraction = min(1.0, (now - c.inserted_at) / c.seconds) if c.seconds else 1.0
            done = int(c.info.files * fraction)
            self.content_watch.emit(ev.ContentProgress(done, c.info.files))
            if fraction >= 1.0:
                c.verified = True
                self.content_watch.emit(ev.ContentVerified())
        self._resync()  # numbers given while numbering the ports
        if self.loader is None:
            self.sim_loader.advance(now)
        if drain:
            self.runner.drain()

    def advance(self, seconds: float, step: float = STEP) -> None:
        end = self.clock.t + seconds
        while self.clock.t < end - 1e-9:
            self.clock.wait_until(min(end, self.clock.t + step))
            self.tick()

    def frame(self) -> Frame:
        return render(self.station.snapshot(), self.messages)

    def close(self) -> None:
        self.runner.close()  # closes the loader: the engine stops writing first
        if self.inserted is not None:
            self.inserted.close()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


# -- scripts ------------------------------------------------------------------------------------


@dataclass
class ScriptResult:
    frames: dict[str, Image.Image]
    slots: dict[int, str]
    failures: list[str]
    all_frames: int


def _size(value: Any, where: str) -> int:
    try:
        return parse_size(str(value))
    except FlashStationError as exc:
        raise ScriptError(f"{where}: {exc}") from exc


def load_script(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ScriptError(f"{path}: not YAML ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise ScriptError(f"{path}: needs a mapping with an 'events' list")
    return doc


def _do(sim: Simulator, step: dict[str, Any], where: str) -> str | None:
    """Carry out one scripted step; returns a frame name to save, if any."""
    if "plug" in step:
        p = step["plug"]
        if not isinstance(p, dict) or "slot" not in p or "size" not in p:
            raise ScriptError(f"{where}: plug needs slot and size")
        real = _size(p["real"], where) if "real" in p else None
        sim.plug(
            int(p["slot"]),
            _size(p["size"], where),
            real,
            p.get("bad_at"),
            bool(p.get("read_only", False)),
        )
    elif "pull" in step:
        sim.pull(int(step["pull"]))
    elif "keyboard" in step:
        sim.keyboard(int(step["keyboard"]))
    elif "press" in step:
        sim.press(str(step["press"]))
    elif "content" in step:
        action = {
            "insert": sim.insert_content,
            "remove": sim.remove_content,
            "damage": sim.damage_content,
        }.get(str(step["content"]))
        if action is None:
            raise ScriptError(f"{where}: content must be insert, remove or damage")
        action()
    elif "frame" in step:
        return str(step["frame"])
    else:
        raise ScriptError(f"{where}: unknown step {sorted(step)}")
    return None


def run_script(
    path: Path,
    frames_dir: Path | None = None,
    language: str | None = None,
    scale: int = 1,
    workdir: Path | None = None,
    engine: bool = False,
) -> ScriptResult:
    """Replay a YAML script of timed events; save named frames (and every change) as PNG."""
    doc = load_script(path)
    sim = Simulator(
        slots=int(doc.get("slots", 8)),
        feeding=str(doc.get("feeding", "auto")),
        batch_window=float(doc.get("batch_window", 3.0)),
        language=language or str(doc.get("language", "en")),
        speed=float(_size(doc.get("speed", "400MB"), f"{path}: speed")),
        verify_seconds=float(doc.get("verify_seconds", 4.0)),
        workdir=workdir,
        engine=engine or bool(doc.get("engine", False)),
        clock=WallClock() if engine or doc.get("engine") else ManualClock(),
    )
    named: dict[str, Image.Image] = {}
    overflows: list[str] = []
    count = 0
    last: Image.Image | None = None
    if frames_dir is not None:
        frames_dir.mkdir(parents=True, exist_ok=True)

    def save(image: Image.Image, name: str) -> None:
        if frames_dir is None:
            return
        if scale > 1:
            image = image.resize(
                (image.width * scale, image.height * scale), Image.Resampling.NEAREST
            )
        image.save(frames_dir / f"{name}.png")

    try:
        steps = sorted(
            enumerate(doc["events"]), key=lambda item: (float(item[1].get("at", 0)), item[0])
        )
        end = float(doc.get("until", max((float(s.get("at", 0)) for _, s in steps), default=0)))
        for index, step in steps:
            where = f"{path}: event {index + 1}"
            if not isinstance(step, dict):
                raise ScriptError(f"{where}: not a mapping")
            at = float(step.get("at", 0))
            while sim.clock.t < at - 1e-9:
                sim.advance(min(STEP, at - sim.clock.t))
                image = sim.frame().image
                if (
                    last is None
                    or ImageChops.difference(last.convert("L"), image.convert("L")).getbbox()
                ):
                    count += 1
                    save(image, f"{count:04d}")
                    last = image
            name = _do(sim, step, where)
            sim.runner.drain()
            if name is not None:
                frame = sim.frame()
                overflows += [f"frame {name}: {o}" for o in frame.overflows]
                named[name] = frame.image
                save(named[name], name)
        if sim.clock.t < end:
            sim.advance(end - sim.clock.t)
        snap = sim.station.snapshot()
        slots = {s.number: str(s.state) + (f":{s.reason}" if s.reason else "") for s in snap.slots}
        failures = list(overflows)
        for slot, want in (doc.get("expect") or {}).items():
            got = slots.get(int(slot))
            if got != str(want):
                failures.append(f"slot {slot}: expected {want}, got {got}")
        return ScriptResult(named, slots, failures, count)
    finally:
        sim.close()
