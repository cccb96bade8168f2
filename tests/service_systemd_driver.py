"""Run ``flashstation run`` under a real systemd (a user manager) and record what systemd saw.

Run inside ``unshare --mount --pid --fork --mount-proc --propagation private``
by ``tests/test_service_systemd.py``: this machine was not booted with
systemd, so a tmpfs over ``/run/systemd`` with a ``system`` folder (visible
only in this mount namespace) lets ``systemd --user`` start; the PID namespace
makes sure nothing it started outlives the test.

The unit is ``image-build/flashstation.service`` with ExecStart, the state
directory and the watchdog interval changed for the test; its hardening is
kept where a user manager can apply it.

    python tests/service_systemd_driver.py WORKDIR   # writes WORKDIR/result.json
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "image-build" / "flashstation.service"


def systemctl(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemctl", "--user", *args], capture_output=True, text=True, check=check
    )


def show(*props: str) -> dict[str, str]:
    out = systemctl("show", "flashstation", *(f"-p{p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_unit(work: Path, real: bool = False, shutdown: str = "") -> str:
    """The shipped unit with test paths. ``shutdown`` ("ok" or "refused"): the stand-in
    asks for the operator shutdown (MENU held) after 1.5 s, and its power-off only writes
    ``poweroff-<shutdown>`` (never systemctl)."""
    text = UNIT.read_text()
    state = work / "state"
    exec_start = (
        f"ExecStart={sys.executable} -m appliance run --fake-station 0.2 "
        f"--state-dir {state} --config {work}/none.yaml --fake-hang-file {work}/hang"
    )
    if shutdown:
        exec_start = (
            f"ExecStart={sys.executable} -m appliance run --fake-station 0.2 "
            f"--state-dir {work}/shutdown-state --config {work}/none.yaml "
            f"--fake-shutdown-after 1.5 --fake-poweroff {work}/poweroff-{shutdown}"
            + (" --fake-poweroff-refused" if shutdown == "refused" else "")
        )
    if real:  # the real station (no screen, no GPIO here: a dummy display)
        (work / "real.yaml").write_text("ui:\n  display:\n    driver: dummy\n")
        exec_start = (
            f"ExecStart={sys.executable} -m appliance run "
            f"--state-dir {work}/real-state --config {work}/real.yaml"
        )
    text = re.sub(r"^ExecStart=.*$", exec_start, text, flags=re.M)
    text = re.sub(r"^WatchdogSec=.*$", "WatchdogSec=2", text, flags=re.M)
    text = re.sub(r"^RestartSec=.*$", "RestartSec=1.5", text, flags=re.M)
    text = re.sub(r"^ReadWritePaths=.*$", f"ReadWritePaths={work}", text, flags=re.M)
    # PrivateTmp would hide the test's folder (pytest's tmp_path is under /tmp)
    text = re.sub(r"^(PrivateTmp)=.*$\n", "", text, flags=re.M)
    text = text.replace(
        "[Service]\n",
        f"[Service]\nEnvironment=PYTHONPATH={REPO}\nWorkingDirectory={work}\nStandardError=append:{work}/service.log\n",
    )
    return text


def main() -> int:
    work = Path(sys.argv[1])
    result: dict[str, object] = {}
    run = work / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run), "HOME": str(work)}
    os.environ.update(env)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/systemd"], check=True)
    Path("/run/systemd/system").mkdir()
    # what PID 1 would have created at boot: the nodes sandboxing mounts over hidden paths
    hidden = Path("/run/systemd/inaccessible")
    hidden.mkdir()
    (hidden / "dir").mkdir()
    (hidden / "reg").touch()
    os.mknod(hidden / "chr", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(hidden / "blk", 0o600 | stat.S_IFBLK, os.makedev(0, 0))
    os.mkfifo(hidden / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(hidden / "sock"))
    for node in hidden.iterdir():
        node.chmod(0)
    manager = subprocess.Popen(
        ["/lib/systemd/systemd", "--user", "--log-target=console", "--log-level=debug"],
        stdout=(work / "manager.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        if not wait_for(
            lambda: systemctl("is-system-running").stdout.strip() in ("running", "degraded"), 20
        ):
            result["error"] = "the user manager did not come up"
            return 0
        units = work / ".config" / "systemd" / "user"
        units.mkdir(parents=True)
        (units / "flashstation.service").write_text(test_unit(work))
        systemctl("daemon-reload", check=True)
        t0 = time.monotonic()
        started = systemctl("start", "flashstation")  # returns once READY=1 arrived
        result["start_rc"] = started.returncode
        result["start_err"] = started.stderr
        result["start_seconds"] = time.monotonic() - t0
        first = show(
            "ExecMainStatus",
            "ExecMainCode",
            "MainPID",
            "ActiveState",
            "SubState",
            "StatusText",
            "WatchdogUSec",
            "Type",
            "NRestarts",
        )
        result["first"] = first
        statuses = set()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # longer than WatchdogSec: petting works
            statuses.add(show("StatusText")["StatusText"])
            time.sleep(0.1)
        result["statuses"] = sorted(statuses)
        result["alive_after_3s"] = show("MainPID", "ActiveState", "NRestarts")
        (work / "hang").write_text("")  # the main loop blocks from now on
        if first.get("ExecMainStatus", "0") != "0":
            return 0
        seen_results: set[str] = set()

        def back() -> bool:
            now = show("NRestarts", "ActiveState", "Result")
            seen_results.add(now["Result"])
            return now["NRestarts"] not in ("", "0") and now["ActiveState"] == "active"

        restarted = wait_for(back, 20)
        result["results_seen"] = sorted(seen_results)
        result["restarted"] = restarted
        result["after_restart"] = show(
            "MainPID", "ActiveState", "NRestarts", "StatusText", "Result"
        )
        stopped = systemctl("stop", "flashstation")
        result["stop_rc"] = stopped.returncode
        result["after_stop"] = show("ActiveState", "Result", "ExecMainStatus")
        result["journal_hint"] = systemctl("status", "flashstation", "--no-pager").stdout[-2000:]
        # the real station under the same hardened unit: it starts, reports, stops
        (units / "flashstation.service").write_text(test_unit(work, real=True))
        systemctl("daemon-reload", check=True)
        started = systemctl("start", "flashstation")
        result["real_start_rc"] = started.returncode
        result["real_start_err"] = started.stderr
        time.sleep(1)
        result["real"] = show("MainPID", "ActiveState", "SubState", "StatusText", "NRestarts")
        stopped = systemctl("stop", "flashstation")
        result["real_stop_rc"] = stopped.returncode
        result["real_after_stop"] = show("ActiveState", "Result")
        # MENU held (the stand-in asks after 1.5 s): the service ends itself, and systemd,
        # for all its Restart=always, must not start it again (RestartPreventExitStatus=)
        for outcome in ("ok", "refused"):
            (units / "flashstation.service").write_text(test_unit(work, shutdown=outcome))
            systemctl("daemon-reload", check=True)
            systemctl("reset-failed", "flashstation")
            started = systemctl("start", "flashstation")
            result[f"shutdown_{outcome}_start_rc"] = started.returncode
            ended = wait_for(
                lambda: show("ActiveState")["ActiveState"] in ("inactive", "failed"), 20
            )
            result[f"shutdown_{outcome}_ended"] = ended
            time.sleep(3.5)  # more than twice RestartSec: a restart would have happened
            result[f"shutdown_{outcome}"] = show(
                "ActiveState", "Result", "ExecMainStatus", "NRestarts", "StatusText"
            )
    finally:
        systemctl("exit")
        try:
            manager.wait(10)
        except subprocess.TimeoutExpired:
            manager.kill()
        (work / "result.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
