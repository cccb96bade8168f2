"""Config layering with last good values; power flags and staggered starts."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest

from appliance.config import StationConfig
from appliance.service.power import PowerMonitor, Stagger, parse_throttled, throttled_reader
from appliance.service.settings import LAST_GOOD_NAME, load_station_config


def test_layers_later_wins_and_missing_files_are_skipped(tmp_path: Path) -> None:
    etc = tmp_path / "etc.yaml"
    boot = tmp_path / "boot.yaml"
    etc.write_text("station:\n  feeding: button\nui:\n  language: ko\n")
    boot.write_text("ui:\n  language: en\n")
    loaded = load_station_config([etc, tmp_path / "missing.yaml", boot], tmp_path / "state")
    assert loaded.source == "files" and loaded.first_problem is None
    assert loaded.config.station.feeding == "button"
    assert loaded.config.ui.language == "en"
    assert loaded.files == (etc, boot)
    assert loaded.error_screen() is None
    assert (tmp_path / "state" / LAST_GOOD_NAME).exists()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / LAST_GOOD_NAME).stat().st_mode) == 0o600


def test_bad_boot_file_runs_on_last_good_and_names_file_and_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    boot = tmp_path / "flashstation.yaml"
    boot.write_text("station:\n  feeding: button\nengine:\n  wipe: quick\n")
    good = load_station_config([boot], state)
    assert good.config.engine.wipe == "quick"

    boot.write_text("station:\n  feeding: button\nengine:\n  wipe: quick\n  chunk_sise: 1MiB\n")
    bad = load_station_config([boot], state)
    assert bad.source == "last good"
    assert bad.config == good.config  # the last good values, not the defaults
    problem = bad.first_problem
    assert problem is not None and problem.file == str(boot) and problem.line == 5
    title, detail = bad.error_screen() or ("", "")
    assert "last good" in title
    assert detail.startswith(f"{boot}:5: engine.chunk_sise: unknown key")
    assert "did you mean 'chunk_size'" in detail


def test_bad_file_on_first_boot_uses_defaults(tmp_path: Path) -> None:
    boot = tmp_path / "flashstation.yaml"
    boot.write_text("ui:\n  language: fr\n  dim_after: soon\n")
    loaded = load_station_config([boot], tmp_path / "state")
    assert loaded.source == "defaults" and loaded.config == StationConfig()
    assert len(loaded.problems) == 2
    assert loaded.error_screen() is not None
    assert "(+1 more)" in loaded.error_screen()[1]  # type: ignore[index]
    assert not (tmp_path / "state" / LAST_GOOD_NAME).exists()


def test_broken_yaml_reports_line(tmp_path: Path) -> None:
    boot = tmp_path / "flashstation.yaml"
    boot.write_text("ui:\n  language: en\n   bad: [\n")
    loaded = load_station_config([boot], tmp_path / "state")
    assert loaded.first_problem is not None and loaded.first_problem.line is not None
    assert "not valid YAML" in loaded.first_problem.message


def test_last_good_round_trips_every_value(tmp_path: Path) -> None:
    etc = tmp_path / "etc.yaml"
    etc.write_text(
        "filesystem:\n  timestamp: '2021-02-03T04:05:06'\nhotplug:\n  slots: {'1-1.2': 3}\n"
        "service:\n  stagger: 250ms\n"
    )
    first = load_station_config([etc], tmp_path / "s")
    etc.write_text("nonsense: 1\n")
    second = load_station_config([etc], tmp_path / "s")
    assert second.source == "last good" and second.config == first.config
    assert second.config.service.stagger == 0.25


def test_run_shows_the_config_error_on_the_station(tmp_path: Path) -> None:
    from appliance.service.app import Service, StationBuild
    from appliance.service.fake import FakeStation
    from appliance.service.notify import Notifier

    boot = tmp_path / "flashstation.yaml"
    boot.write_text("ui:\n  language: fr\n")
    loaded = load_station_config([boot], tmp_path / "state")
    station = FakeStation()
    service = Service(
        loaded,
        lambda ctx: StationBuild(station),
        state_dir=tmp_path / "state",
        notifier=Notifier({}),
        power_reader=lambda: None,
        loop_period=0.01,
    )
    thread = threading.Thread(target=service.run)
    thread.start()
    deadline = time.monotonic() + 20
    while not station.errors and time.monotonic() < deadline:
        time.sleep(0.01)
    service.request_stop()
    thread.join(10)
    assert station.errors and f"{boot}:2" in station.errors[0][1]
    assert station.status_line().startswith("error:")


@pytest.mark.parametrize(
    ("text", "now", "occurred"),
    [
        ("0x50005\n", True, True),
        ("50005", True, True),  # sysfs: hex without prefix
        ("throttled=0x50000\n", False, True),  # vcgencmd
        ("0", False, False),
    ],
)
def test_parse_throttled(text: str, now: bool, occurred: bool) -> None:
    flags = parse_throttled(text)
    assert flags.under_voltage is now
    assert flags.under_voltage_occurred is occurred


def test_every_flag_bit() -> None:
    flags = parse_throttled("0xf000f")
    assert flags.under_voltage and flags.freq_capped and flags.throttled and flags.soft_temp_limit
    assert flags.under_voltage_occurred and flags.freq_capped_occurred
    assert flags.throttled_occurred and flags.soft_temp_limit_occurred
    assert flags.describe() == "under-voltage, throttled, frequency capped, hot"
    assert parse_throttled("0x4").describe() == "throttled"
    with pytest.raises(ValueError, match="cannot read"):
        parse_throttled("garbage")


def test_monitor_reads_fake_sysfs_and_fires_on_edges_only(tmp_path: Path) -> None:
    sysfs = tmp_path / "get_throttled"
    sysfs.write_text("0\n")
    changes: list[str | None] = []
    monitor = PowerMonitor(throttled_reader(sysfs, vcgencmd="/nonexistent"), changes.append)
    monitor.poll()
    sysfs.write_text("50005\n")
    monitor.poll()
    monitor.poll()
    sysfs.write_text("50000\n")
    monitor.poll()
    assert changes == ["under-voltage: check the power supply", None]


def test_reader_falls_back_to_vcgencmd_then_none(tmp_path: Path) -> None:
    fake = tmp_path / "vcgencmd"
    fake.write_text("#!/bin/sh\necho throttled=0x1\n")
    fake.chmod(0o755)
    read = throttled_reader(tmp_path / "missing", vcgencmd=str(fake))
    flags = read()
    assert flags is not None and flags.under_voltage
    assert throttled_reader(tmp_path / "missing", vcgencmd="/nonexistent")() is None


def test_stagger_spaces_starts() -> None:
    now = [100.0]
    stagger = Stagger(2.0, clock=lambda: now[0])
    assert [stagger.reserve() for _ in range(3)] == [0.0, 2.0, 4.0]
    now[0] = 110.0
    assert stagger.reserve() == 0.0


def test_stagger_wait_turn_is_cancellable() -> None:
    stagger = Stagger(5.0)
    assert stagger.wait_turn(threading.Event())
    cancel = threading.Event()
    cancel.set()
    t0 = time.monotonic()
    assert not stagger.wait_turn(cancel)
    assert time.monotonic() - t0 < 1.0


def test_stagger_real_threads_are_spaced() -> None:
    stagger = Stagger(0.05)
    starts: list[float] = []
    lock = threading.Lock()

    def job() -> None:
        stagger.wait_turn()
        with lock:
            starts.append(time.monotonic())

    before = time.monotonic()
    threads = [threading.Thread(target=job) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    # sleeps never end early: the k-th start is at least k delays after the first reservation
    for k, started in enumerate(starts):
        assert started >= before + k * 0.05 - 1e-3
