"""systemd's notification protocol (``Type=notify``, ``WatchdogSec=``) without libsystemd.

``NotifySocket`` sends ``sd_notify`` datagrams to ``$NOTIFY_SOCKET``: a unix datagram socket, a path
or, with a leading ``@``, a name in the abstract namespace. It never blocks and never raises into the
caller: a refused send is counted and logged once.

``ServiceNotifier`` is a scan observer (``Scheduler.add_scan_observer``), so the scan thread itself
drives it and nothing else can keep the service alive:

* ``READY=1`` once every task has completed its first scan;
* ``WATCHDOG=1`` every quarter of ``$WATCHDOG_USEC``, and only for a quarter in which no scan of any
  task overran (checked on the scheduler's statistics). A scan thread that hangs sends
  nothing more, and neither does one whose scans keep missing their deadlines for the whole
  ``WatchdogSec``: systemd then kills and restarts the service. A single late scan withholds one
  ping only, which systemd tolerates (a quarter rather than systemd's usual half for that margin);
* ``STATUS=`` with what runs, and ``STOPPING=1`` on a clean stop.

Time comes from the scan records (the executor's clock), so the behaviour is tested in virtual time.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Mapping

from .scheduler import ScanRecord
from .stats import ExecutorStats

log = logging.getLogger("plcrun.service")

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"


class NotifySocket:
    """The manager's notification socket (``$NOTIFY_SOCKET``)."""

    def __init__(self, address: str) -> None:
        if not address or not (address.startswith(("/", "@"))):
            raise ValueError(f"${NOTIFY_SOCKET_ENV}={address!r}: only unix socket paths and @abstract names")
        self.address = address
        self._target = "\0" + address[1:] if address.startswith("@") else address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._socket.setblocking(False)
        self.sent = 0
        self.failed = 0

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> NotifySocket | None:
        """The socket named by ``$NOTIFY_SOCKET``, or None when plcrun was not started by systemd
        with ``Type=notify`` (or the address is of a kind plcrun does not speak, which is logged)."""
        address = (os.environ if env is None else env).get(NOTIFY_SOCKET_ENV, "")
        if not address:
            return None
        try:
            return cls(address)
        except ValueError as error:
            log.warning("service notifications off: %s", error)
            return None

    def send(self, message: str) -> bool:
        try:
            self._socket.sendto(message.encode(), self._target)
        except OSError as error:
            self.failed += 1
            if self.failed == 1:
                log.warning("service notification to %s failed: %s", self.address, error.strerror or error)
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        self._socket.close()


def watchdog_interval_ns(env: Mapping[str, str] | None = None, pid: int | None = None) -> int | None:
    """``$WATCHDOG_USEC`` in ns when the watchdog is meant for this process (``$WATCHDOG_PID`` absent
    or equal to ``pid``), else None."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner.strip() != str(os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number: no watchdog pings", usec)
        return None
    return value * 1000 if value > 0 else None


class ServiceNotifier:
    """Scan observer that tells systemd when plcrun is ready and that its scans keep their deadlines."""

    def __init__(
        self,
        sock: NotifySocket,
        stats: ExecutorStats,
        tasks: Iterable[str],
        *,
        watchdog_ns: int | None = None,
        status: str = "",
    ) -> None:
        self.sock = sock
        self.stats = stats
        self.status = status
        self.ping_every_ns = None if watchdog_ns is None else max(1, watchdog_ns // 4)
        self._waiting = set(tasks)  # tasks that have not completed a scan yet
        self.ready = False
        self._window_start_ns: int | None = None
        self._late_at_window_start = 0
        self.pings = 0
        self.withheld = 0  # windows in which a late scan held the ping back

    def _late_count(self) -> int:
        return sum(t.overruns for t in self.stats.tasks.values())

    def __call__(self, record: ScanRecord) -> None:
        if not self.ready:
            self._waiting.discard(record.task)
            if self._waiting:
                return
            self.ready = True
            status = f"\nSTATUS={self.status}" if self.status else ""
            self.sock.send(f"READY=1{status}")
            self._new_window(record.end_ns)
            return
        if self.ping_every_ns is None or self._window_start_ns is None:
            return
        if record.end_ns - self._window_start_ns < self.ping_every_ns:
            return
        late = self._late_count()  # smaller than at the window start after a statistics reset
        if late <= self._late_at_window_start and not record.overrun:
            self.sock.send("WATCHDOG=1")
            self.pings += 1
        else:
            self.withheld += 1
        self._new_window(record.end_ns)

    def _new_window(self, now_ns: int) -> None:
        self._window_start_ns = now_ns
        self._late_at_window_start = self._late_count()

    def stopping(self, why: str = "stopping") -> None:
        self.sock.send(f"STOPPING=1\nSTATUS={why}")
