"""systemd's notify protocol: READY, STATUS, WATCHDOG, STOPPING.

Uses systemd-python's ``systemd.daemon.notify`` (libsystemd's ``sd_notify``)
when it is installed; otherwise a few lines that do the same thing (one
datagram to ``$NOTIFY_SOCKET``, ``@`` meaning the abstract namespace), so a
station whose image lacks the module still tells systemd it is alive rather
than being killed as stuck. Without ``NOTIFY_SOCKET`` (run by hand, in tests,
in the simulator) every call is a silent no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

Sender = Callable[[str], bool]


def _systemd_sender() -> Sender | None:
    try:
        from systemd import daemon
    except ImportError:
        return None
    return lambda message: bool(daemon.notify(message))


def socket_sender(path: str) -> Sender:
    """Send one datagram to ``path`` (a fallback equal to ``sd_notify`` for our use)."""
    address = "\0" + path[1:] if path.startswith("@") else path

    def send(message: str) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                sock.connect(address)
                sock.sendall(message.encode("utf-8"))
            except OSError as exc:
                log.debug("notify to %s failed: %s", path, exc)
                return False
        return True

    return send


class Notifier:
    """Talks to the service manager, if there is one.

    ``environ`` and ``use_module`` exist for tests: the module reads the real
    process environment, so a test of the fallback passes ``use_module=False``.
    """

    def __init__(
        self, environ: Mapping[str, str] | None = None, *, use_module: bool = True
    ) -> None:
        env = os.environ if environ is None else environ
        self.socket_path = env.get("NOTIFY_SOCKET") or None
        self._send: Sender | None = None
        if self.socket_path:
            module = _systemd_sender() if use_module and environ is None else None
            self._send = module or socket_sender(self.socket_path)
        self.watchdog_usec = self._watchdog_usec(env)
        self._last_status: str | None = None

    @staticmethod
    def _watchdog_usec(env: Mapping[str, str]) -> int | None:
        """``WATCHDOG_USEC`` if it is meant for this process (``WATCHDOG_PID`` unset or ours)."""
        try:
            usec = int(env.get("WATCHDOG_USEC", "0"))
            pid = int(env.get("WATCHDOG_PID", "0") or 0)
        except ValueError:
            return None
        if usec <= 0 or (pid and pid != os.getpid()):
            return None
        return usec

    @property
    def enabled(self) -> bool:
        return self._send is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds systemd waits for ``WATCHDOG=1`` before killing us, or None."""
        return self.watchdog_usec / 1e6 if self.watchdog_usec else None

    def send(self, message: str) -> bool:
        return self._send(message) if self._send else False

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        """Send ``STATUS=`` when it changed (a single line; newlines would end the field)."""
        text = " ".join(text.split())
        if text == self._last_status:
            return False
        self._last_status = text
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> bool:
        return self.send(f"STOPPING=1\nSTATUS={status}")
