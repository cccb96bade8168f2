"""The station on the real engine: image-file sticks through EngineLoader, in real time."""

from __future__ import annotations

import time
from pathlib import Path

from appliance.station.adapters import reason_of
from appliance.station.states import FailReason
from appliance.ui.simulator import Simulator, WallClock

MiB = 1024 * 1024


def wait_states(sim: Simulator, want: dict[int, str], timeout: float = 60.0) -> dict[int, str]:
    end = time.monotonic() + timeout
    got: dict[int, str] = {}
    while time.monotonic() < end:
        sim.advance(0.1, step=0.1)
        snap = sim.station.snapshot()
        got = {n: str(snap.slot(n).state) for n in want}
        if got == want:
            break
    return got


def test_engine_session_healthy_fake_pulled(tmp_path: Path) -> None:
    sim = Simulator(
        slots=4,
        batch_window=0.2,
        speed=60e6,
        verify_seconds=0.2,
        workdir=tmp_path,
        engine=True,
        clock=WallClock(),
    )
    try:
        sim.insert_content()
        sim.advance(0.5, step=0.1)
        sim.plug(1, 80 * MiB)
        sim.plug(2, 512 * MiB, real=96 * MiB)  # wrap-around fake
        sim.plug(3, 200 * MiB)
        sim.advance(1.0, step=0.1)
        sim.pull(3)  # mid-write
        got = wait_states(sim, {1: "done", 2: "failed", 3: "removed"})
        assert got == {1: "done", 2: "failed", 3: "removed"}
        snap = sim.station.snapshot()
        assert snap.slot(2).reason is FailReason.FAKE_CAPACITY
        assert snap.slot(1).tier == "basic"
        # the loaded image is a real FAT32 stick: an MBR signature and a FAT32 volume
        data = sim.image_path(1).read_bytes()[:512]
        assert data[510:512] == b"\x55\xaa"
    finally:
        sim.close()


def test_reason_mapping() -> None:
    reason, detail = reason_of("x: fake capacity: about 8.0 GB real of 64.0 GB claimed")
    assert reason is FailReason.FAKE_CAPACITY and detail == {"real": 8e9, "claimed": 64e9}
    assert reason_of("/dev/sdb: drive removed")[0] is FailReason.REMOVED
    assert reason_of("/x at offset 4096: verify failed: differs")[0] is FailReason.VERIFY_FAILED
    assert reason_of("x: write-protected")[0] is FailReason.READ_ONLY
    assert reason_of("content SSD removed or unreadable (x)")[0] is FailReason.CONTENT_REMOVED
    assert reason_of("strange")[0] is FailReason.UNKNOWN


def test_hotplug_events_become_station_events() -> None:
    from appliance.hotplug import events as hp
    from appliance.hotplug.classify import Decision, Verdict
    from appliance.station import events as ev
    from appliance.station.adapters import from_hotplug

    posted: list[object] = []
    callback = from_hotplug(posted.append)
    target = Decision(Verdict.TARGET, "usb_flash", "a USB flash drive")
    callback(hp.DriveArrived(3, "1-1.3", "/dev/sdc", "id3", target, 8 * 10**9))
    callback(
        hp.DriveArrived(
            4, "1-1.4", "/dev/sdd", "id4", Decision(Verdict.IGNORE, "too_large", "2 TB"), 2 * 10**12
        )
    )
    callback(
        hp.DriveArrived(
            5, "1-1.5", "/dev/sde", "id5", Decision(Verdict.IGNORE, "no_media", "empty reader"), 0
        )
    )
    callback(hp.DeviceRejected(6, "1-1.6", "HID interface", "slot 6: not a plain storage device"))
    callback(hp.MediaChanged(7, "1-1.7", "/dev/sdf", "id7", False, target))
    callback(hp.DriveGone(3, "1-1.3", "/dev/sdc", "id3"))
    callback(hp.DriveGone(None, None, "/dev/sdz", "idz"))  # no slot: ignored
    assert posted == [
        ev.DriveArrived(3, 8 * 10**9, device="/dev/sdc", drive_id="id3", port="1-1.3"),
        ev.DeviceRejected(4, "too_large", "2 TB", port="1-1.4"),
        ev.DeviceRejected(6, "not_storage", "HID interface", port="1-1.6"),
        ev.DriveGone(7),
        ev.DriveGone(3),
    ]


def test_full_wipe_shows_wiping_after_the_content(tmp_path: Path) -> None:
    """The engine's one write pass is 'loading' up to the content's end, then 'wiping'."""
    from appliance.station import events as ev

    sim = Simulator(
        slots=2,
        batch_window=0.2,
        speed=60e6,
        verify_seconds=0.2,
        workdir=tmp_path,
        engine=True,
        clock=WallClock(),
    )
    phases: list[str] = []
    states: list[str] = []
    apply = sim.station.apply

    def recording(event: ev.Event) -> list[object]:
        effects = apply(event)
        if isinstance(event, ev.JobProgress) and event.slot == 1:
            phases.append(event.phase)
            states.append(str(sim.station.snapshot().slot(1).state))
        return list(effects)

    sim.station.apply = recording  # type: ignore[method-assign]
    try:
        sim.insert_content()
        sim.advance(0.5, step=0.1)
        sim.plug(1, 128 * MiB)
        assert wait_states(sim, {1: "done"}) == {1: "done"}
    finally:
        sim.close()
    order = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert order[-3:] == ["load", "wipe", "verify"], order
    assert "wiping" in states and states.index("wiping") > states.index("loading")


def test_data_end_is_where_only_zeros_follow(tmp_path: Path) -> None:
    import os

    from appliance.fat32 import Zeros, compile_plan, scan_content

    src = tmp_path / "src"
    (src / "folder").mkdir(parents=True)
    (src / "folder" / "a.bin").write_bytes(os.urandom(300_000))
    (src / "b.txt").write_bytes(b"x")
    plan = compile_plan(scan_content(src), 128 * MiB)
    end = plan.data_end()
    extents = list(plan.extents())
    assert all(isinstance(e.source, Zeros) for e in extents if e.offset >= end)
    last_data = max(e.offset + e.length for e in extents if not isinstance(e.source, Zeros))
    assert end - plan.cluster_size < last_data <= end
