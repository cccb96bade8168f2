"""Powering the station off after an operator shutdown (MENU held).

The station has no power switch an operator should use while sticks load: MENU
held stops every job (the engine commits last, so a cancelled stick has no
partition table), the service records the cancellations and closes the ledger,
and only then asks systemd to power the Pi off. Powering off from inside the
service, not from the unit (``ExecStopPost=``), is deliberate: the service still
owns the screen, so a refused power-off is shown to the operator in plain
words instead of the unit silently ending (docs/service.md, "Shutdown from the
station").

Two guards keep a developer's computer on: ``service.poweroff`` (default true)
and ``INVOCATION_ID`` in the environment, which systemd sets for every unit it
starts and a shell never does. ``flashstation run`` typed by hand therefore
stops in order and exits; the simulator (``flashstation demo``) does not use
the service at all.

The command is injectable (:class:`~appliance.service.app.Service` takes any
``PowerOff``); tests pass fakes that record the call and never run systemctl.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Mapping, Sequence

from appliance.config.schema import ServiceConfig
from appliance.errors import FlashStationError

log = logging.getLogger(__name__)

#: Exit statuses of an operator shutdown; the unit lists both in ``RestartPreventExitStatus=``
#: so systemd never restarts the station into its main screen after MENU was held.
EXIT_SHUT_DOWN = 10  # stopped in order; the power-off was asked for (or is not wanted here)
EXIT_POWEROFF_FAILED = 11  # stopped in order, but the power-off was refused

#: What ``systemctl poweroff`` queues when it goes to PID 1 itself. ``systemctl poweroff``
#: first asks logind, which authorises a root caller by CAP_SYS_BOOT (dropped by the
#: unit's CapabilityBoundingSet) or polkit, and does not fall back after a refusal.
#: PID 1, reached over its private socket (/run/systemd/private, AF_UNIX), authorises
#: the job by CAP_SYS_ADMIN, which the unit keeps. ``--no-block``: the power-off stops
#: this very service, so waiting for the job would wait for our own end.
SYSTEMCTL_POWEROFF: tuple[str, ...] = (
    "systemctl",
    "--no-block",
    "--job-mode=replace-irreversibly",
    "start",
    "poweroff.target",
)

PowerOff = Callable[[], None]


class PowerOffError(FlashStationError):
    """The power-off could not be asked for (command missing, refused, or hanging)."""


class SystemctlPowerOff:
    """Asks systemd to power off; returns once the job is queued, raises PowerOffError."""

    def __init__(self, command: Sequence[str] = SYSTEMCTL_POWEROFF, timeout: float = 30.0) -> None:
        self.command = tuple(command)
        self.timeout = timeout

    def __call__(self) -> None:
        try:
            result = subprocess.run(
                self.command,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise PowerOffError(f"{self.command[0]} not found") from exc
        except subprocess.TimeoutExpired as exc:
            waited = f"{self.timeout:.0f} s"
            raise PowerOffError(f"{self.command[0]} did not answer in {waited}") from exc
        except OSError as exc:
            raise PowerOffError(f"{self.command[0]}: {exc.strerror or exc}") from exc
        if result.returncode != 0:
            said = (result.stderr or result.stdout or "").strip().splitlines()
            why = said[-1] if said else "no message"
            raise PowerOffError(f"{self.command[0]} exit status {result.returncode}: {why}")


def poweroff_refusal(config: ServiceConfig, environ: Mapping[str, str]) -> str | None:
    """Why this process must not power the system off, or None when it may."""
    if not config.poweroff:
        return "service.poweroff is false"
    if not environ.get("INVOCATION_ID"):
        return "not started by systemd (no INVOCATION_ID): this computer stays on"
    return None
