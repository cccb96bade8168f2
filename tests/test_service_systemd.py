"""``flashstation run`` under a real systemd: notify, STATUS, watchdog restart, stop.

This machine was not booted with systemd (PID 1 is not systemd), but it has
systemd installed: ``tests/service_systemd_driver.py`` starts a real
``systemd --user`` manager in private mount and PID namespaces (``unshare``,
root needed) and runs the shipped unit file, with test paths, under it.
Skipped, with the reason, where that is not possible.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.service.ledger import Ledger

HERE = Path(__file__).resolve().parent
SYSTEMD = Path("/lib/systemd/systemd")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root for unshare --mount --pid"
    if not shutil.which("unshare") or not shutil.which("systemctl") or not SYSTEMD.exists():
        return "needs unshare, systemctl and /lib/systemd/systemd"
    return None


@pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")
def test_real_systemd_notify_status_watchdog_restart(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            sys.executable,
            str(HERE / "service_systemd_driver.py"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    if "error" in result:
        pytest.skip(f"systemd --user cannot run here: {result['error']}")
    log = (tmp_path / "service.log").read_text()

    # Type=notify: `systemctl start` returned only after READY=1, and the unit is running
    assert result["start_rc"] == 0, result
    first = result["first"]
    assert (first["Type"], first["ActiveState"], first["SubState"]) == (
        "notify",
        "active",
        "running",
    )
    assert first["WatchdogUSec"] == "2s"
    # STATUS= mirrors the station's summary line as it changes
    assert first["StatusText"].startswith("ready:")
    assert len(result["statuses"]) >= 3
    assert any(not s.endswith(" 0 done, 0 failed") for s in result["statuses"])
    # petted: still the same process after longer than WatchdogSec
    alive = result["alive_after_3s"]
    assert (alive["MainPID"], alive["NRestarts"]) == (first["MainPID"], "0")
    # a stuck main loop stops the petting; systemd kills and restarts the service
    assert result["restarted"], result
    assert "watchdog" in result["results_seen"]
    after = result["after_restart"]
    assert after["MainPID"] != first["MainPID"] and after["NRestarts"] == "1"
    assert "no longer petting the watchdog" in log
    # SIGTERM from systemctl stop: clean, reverse-order stop
    assert result["stop_rc"] == 0 and result["after_stop"]["Result"] == "success"
    assert log.rindex("stopping station") < log.rindex("stopping ledger")
    # the killed run's running job is interrupted, never done; no serial anywhere
    with Ledger(tmp_path / "state") as led:
        totals = led.totals()
    assert totals.done >= 3 and totals.running == 0
    for path in [tmp_path / "service.log", *(tmp_path / "state").iterdir()]:
        assert b"SIMSERIAL" not in path.read_bytes(), path
    # the real station (appliance.commands.hosting) under the same hardened unit
    assert result["real_start_rc"] == 0, result["real_start_err"]
    real = result["real"]
    assert (real["ActiveState"], real["SubState"], real["NRestarts"]) == ("active", "running", "0")
    assert real["StatusText"].startswith(("no_content", "starting", "ready", "error")), real
    assert result["real_stop_rc"] == 0 and result["real_after_stop"]["Result"] == "success"
    assert (tmp_path / "real-state" / "ledger.sqlite3").exists()
    # MENU held under systemd: INVOCATION_ID set, so the (stand-in) power-off is asked for
    # after the ledger closed; exit 10 (11 when refused) and systemd does not restart it
    # (systemd 252 resets ExecMainStatus once a unit ends in success: 10 is SuccessExitStatus)
    for outcome, status, state, res in (
        ("ok", "0", "inactive", "success"),
        ("refused", "11", "failed", "exit-code"),
    ):
        seen = result[f"shutdown_{outcome}"]
        assert result[f"shutdown_{outcome}_start_rc"] == 0, result
        assert result[f"shutdown_{outcome}_ended"], seen
        assert (seen["ExecMainStatus"], seen["NRestarts"]) == (status, "0"), seen
        assert (seen["ActiveState"], seen["Result"]) == (state, res), seen
        assert (tmp_path / f"poweroff-{outcome}").read_text() == "power-off asked\n"
    assert result["shutdown_refused"]["StatusText"] == "power-off failed: refused (stand-in)"
    assert log.count("the ledger is closed; powering off") == 2
    assert "power-off failed: refused (stand-in)" in log
    with Ledger(tmp_path / "shutdown-state") as led:
        totals = led.totals()
    assert totals.running == 0 and totals.cancelled >= 1  # the running job was cancelled


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_unit_file_verifies_and_keeps_its_hardening(tmp_path: Path) -> None:
    unit = (HERE.parent / "image-build" / "flashstation.service").read_text()
    for setting in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=always",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/flashstation",
        "RestrictAddressFamilies=AF_UNIX AF_NETLINK",
        "NoNewPrivileges=yes",
        "DevicePolicy=closed",
    ):
        assert setting in unit, setting
    # systemd's own parser, with ExecStart pointed at something that exists here
    test_unit = tmp_path / "flashstation.service"
    test_unit.write_text(unit.replace("/opt/flashstation/venv/bin/flashstation", sys.executable))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(test_unit)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "flashstation.service" not in done.stderr, done.stderr  # no warnings about the unit
