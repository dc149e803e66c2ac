"""The charging station as the CSMS sees it: one asyncio task tree on the driver's network thread.

Connection life: connect (subprotocol, security profile) → BootNotification, repeated at the interval
the CSMS gives until Accepted → StatusNotification for every EVSE → Heartbeat every interval, the
transaction queue drained in order, live messages (status, meter values, charging needs) sent as
they come. Snapshots of the EV sessions arrive from the scan thread through ``snapshot`` and become
transaction events whether or not the CSMS is reachable (queued in the encrypted store). Charging
profiles are turned into a ``Plan`` the scan thread evaluates; the plan is rebuilt on every change
(profile, transaction, link state) and before its horizon runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from .config import OcppConfig
from .handlers import make_handlers
from .link import describe_error, open_link, ssl_context, version_of
from .persist import StationStore
from .rpc import CallFailed, Rpc
from .schedule import Context, ProfileError, ProfileSet, Values, parse_profile
from .transactions import Session, Tracker
from .variables import DeviceModel

log = logging.getLogger("plcrun.ocpp")

PLAN_HORIZON_S = 3600.0
_BLOCKED = Values(0.0, 0.0)


@dataclass(frozen=True)
class Plan:
    """Composite schedules from ``built_at`` to ``until`` for the station (0) and each EVSE."""

    version: int
    built_at: float
    until: float
    targets: dict[int, list[tuple[float, Values]]]
    threshold_mhz: float | None = None


@dataclass
class LinkState:
    connected: bool = False
    version: str | None = None
    accepted: bool = False
    detail: str = "not started"
    problem: str | None = None  # why the last connection attempt failed (alarm text)
    counters: dict[str, int] = field(default_factory=dict)


class Station:
    """See the module docstring. ``wall()`` gives epoch seconds (the executor clock mapped to UTC)."""

    def __init__(
        self,
        config: OcppConfig,
        wall: Callable[[], float],
        publish_plan: Callable[[Plan], None],
        on_link: Callable[[LinkState], None],
    ) -> None:
        self.config = config
        self.wall = wall
        self._publish_plan = publish_plan
        self._on_link = on_link
        self.link = LinkState()
        self.counters = self.link.counters
        self.snapshot: tuple[float, dict[int, Session]] | None = None  # written by the scan thread
        self.tracker = Tracker(config.evses)
        self.profiles = ProfileSet()
        self.model = DeviceModel(self._default_variables(), self._variable_changed)
        self.store: StationStore | None = None
        self.rpc: Rpc | None = None
        self.offline_since: float | None = None
        self.needs_sent: dict[int, tuple[object, ...]] = {}
        self._plan_version = 0
        self._wake_sender = asyncio.Event()
        self._outbox: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=1000)
        self._stopping = asyncio.Event()
        self._reconnect = asyncio.Event()
        self._boot_reason = "PowerUp"
        self._failures: dict[int, int] = {}

    # ------------------------------------------------------------ state
    def _default_variables(self) -> dict[str, str]:
        c = self.config
        return {
            "OCPPCommCtrlr.HeartbeatInterval": str(c.heartbeat_interval_s),
            "OCPPCommCtrlr.MessageTimeout": f"{c.response_timeout_s:g}",
            "SampledDataCtrlr.TxUpdatedInterval": str(c.sample_interval_s),
            "SampledDataCtrlr.TxUpdatedMeasurands": ",".join(_MEASURED),
            "SampledDataCtrlr.TxStartedMeasurands": ",".join(_MEASURED),
            "SampledDataCtrlr.TxEndedMeasurands": ",".join(_MEASURED),
            "AlignedDataCtrlr.Interval": str(c.aligned_interval_s),
            "AlignedDataCtrlr.Measurands": ",".join(_MEASURED),
            "V2XChargingCtrlr.LocalFrequencyUpdateThreshold": "0",
            "SmartChargingCtrlr.Enabled": "true",
            "SmartChargingCtrlr.RateUnit": "A,W",
            "TxCtrlr.TxStartPoint": "EVConnected",
            "TxCtrlr.TxStopPoint": "EVConnected",
            "SecurityCtrlr.SecurityProfile": str(c.security_profile),
            "DeviceDataCtrlr.ItemsPerMessage": "50",
        }

    def _variable_changed(self, component: str, name: str, value: str) -> None:
        self.save_state()
        self.apply_measurands()
        if name == "LocalFrequencyUpdateThreshold":
            self.rebuild_plan()

    def load_state(self) -> None:
        assert self.store is not None
        state = self.store.load_state()
        self.tracker.load_json(state.get("evses", {}))
        saved = state.get("offline_since")
        now = self.wall()
        # offline since the last moment the previous run knew (never in the future: a clock set back)
        self.offline_since = min(float(saved), now) if isinstance(saved, int | float) else now
        for saved in state.get("profiles", []):
            try:
                profile = parse_profile(
                    int(saved["evse"]),
                    saved["raw"],
                    float(saved["at"]),
                    self.config.voltage_v,
                    self.config.phases,
                )
                self.profiles.install(profile)
            except (ProfileError, KeyError, TypeError, ValueError) as error:
                log.error("OCPP: stored charging profile dropped (%s)", error)
        for key, value in state.get("variables", {}).items():
            if key in self.model.values and isinstance(value, str):
                self.model.values[key] = value
        self.apply_measurands()

    def apply_measurands(self) -> None:
        """The measurand variables decide what each kind of meter value reports."""
        by_context = {
            "Transaction.Begin": "SampledDataCtrlr.TxStartedMeasurands",
            "Sample.Periodic": "SampledDataCtrlr.TxUpdatedMeasurands",
            "Trigger": "SampledDataCtrlr.TxUpdatedMeasurands",
            "Transaction.End": "SampledDataCtrlr.TxEndedMeasurands",
            "Sample.Clock": "AlignedDataCtrlr.Measurands",
        }
        self.tracker.measurands = {
            context: tuple(m for m in self.model.values.get(key, "").split(",") if m)
            for context, key in by_context.items()
        }

    def save_state(self) -> None:
        if self.store is None:
            return
        profiles = [
            {"evse": p.evse_id, "at": p.installed_at, "raw": p.raw} for p in self.profiles.profiles.values()
        ]
        defaults = self._default_variables()
        variables = {k: v for k, v in self.model.values.items() if defaults.get(k) != v}
        state: dict[str, Any] = {
            "evses": self.tracker.to_json(),
            "profiles": profiles,
            "variables": variables,
        }
        state["offline_since"] = self.offline_since if self.offline_since is not None else self.wall()
        self.store.save_state(state)  # offline_since: a restart continues the offline count

    def context(self) -> Context:
        return Context(self.tracker.open_transactions(), self.offline_since)

    def rebuild_plan(self) -> None:
        now = self.wall()
        until = now + PLAN_HORIZON_S
        ctx = self.context()
        targets: dict[int, list[tuple[float, Values]]] = {0: self.profiles.segments(0, now, until, ctx)}
        cache: dict[tuple[object, ...], list[tuple[float, Values]]] = {}
        for evse in range(1, self.config.evses + 1):
            if self.tracker.states[evse].stopped:
                targets[evse] = [(now, _BLOCKED)]
                continue
            groups = self.profiles.relevant(evse, ctx)
            key = (tuple(p.id for g in groups for p in g), ctx.tx.get(evse, (None, 0.0))[1])
            if key not in cache:
                cache[key] = self.profiles.segments(evse, now, until, ctx)
            targets[evse] = cache[key]
        self._plan_version += 1
        threshold = self.model.number("V2XChargingCtrlr", "LocalFrequencyUpdateThreshold", 0.0)
        self._publish_plan(Plan(self._plan_version, now, until, targets, threshold))

    # ------------------------------------------------------------ run
    async def run(self) -> None:
        self.store = StationStore(self.config.store)
        for problem in self.store.problems:
            log.error("OCPP store: %s", problem)
        self.load_state()
        self.rebuild_plan()
        background = [
            asyncio.create_task(_guarded(self._snapshot_loop)),
            asyncio.create_task(_guarded(self._plan_loop)),
            asyncio.create_task(_guarded(self._sample_loop)),
        ]
        delay = self.config.reconnect_min_s
        try:
            while not self._stopping.is_set():
                try:
                    ws = await open_link(self.config, ssl_context(self.config))
                except (OSError, TimeoutError, Exception) as error:  # every connect failure is retried
                    self.link.problem = describe_error(error, self.config)
                    self.link.detail = self.link.problem
                    self.counters["connect_failures"] = self.counters.get("connect_failures", 0) + 1
                    self._on_link(self.link)
                    await self._sleep(delay)
                    delay = min(delay * 2, self.config.reconnect_max_s)
                    continue
                delay = self.config.reconnect_min_s
                try:
                    await self._session(ws)
                finally:
                    await ws.close()
                    self.rpc = None
                    self.link.connected = self.link.accepted = False
                    self.offline_since = self.wall()
                    self.link.detail = "disconnected"
                    self.rebuild_plan()  # before the link news: whoever sees "offline" has the offline plan
                    self._on_link(self.link)
                if not self._stopping.is_set():
                    await self._sleep(self.config.reconnect_min_s)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self.save_state()
            self.store.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _session(self, ws: Any) -> None:
        version = version_of(ws.subprotocol)
        if version is None:
            self.link.problem = f"the CSMS agreed no OCPP version of {', '.join(self.config.versions)}"
            self._on_link(self.link)
            return
        rpc = Rpc(
            ws,
            version,
            make_handlers(self),
            self.model.number("OCPPCommCtrlr", "MessageTimeout", self.config.response_timeout_s),
            self.config.max_message_bytes,
            self.counters,
        )
        self.rpc = rpc
        self.link.connected, self.link.version, self.link.problem = True, version, None
        self.link.detail = f"connected to {self.config.host}:{self.config.port} (OCPP {version}), booting"
        self._on_link(self.link)
        self._reconnect.clear()
        receiver = asyncio.create_task(rpc.receive_forever())
        tasks: list[asyncio.Task[Any]] = [receiver]
        try:
            boot = asyncio.create_task(self._boot(rpc))
            tasks.append(boot)
            stop = asyncio.create_task(self._stopping.wait())
            again = asyncio.create_task(self._reconnect.wait())
            tasks += [stop, again]
            done, _ = await asyncio.wait({receiver, boot, stop, again}, return_when=asyncio.FIRST_COMPLETED)
            if boot in done and boot.exception() is None and not receiver.done():
                self.link.accepted = True
                self.offline_since = None
                self.link.detail = f"online: {self.config.host}:{self.config.port} (OCPP {version})"
                self.rebuild_plan()
                self._on_link(self.link)
                tasks += [
                    asyncio.create_task(_guarded(lambda: self._heartbeat_loop(rpc))),
                    asyncio.create_task(_guarded(lambda: self._sender_loop(rpc))),
                    asyncio.create_task(_guarded(lambda: self._outbox_loop(rpc))),
                ]
                for evse in range(1, self.config.evses + 1):
                    self.send_live("StatusNotification", self.tracker.status(evse, self.wall()))
                await asyncio.wait({receiver, stop, again}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done() and not receiver.cancelled():
                error = receiver.exception()
                if error is not None and not isinstance(error, ConnectionClosed):
                    log.error("OCPP receiver stopped: %r", error)
        finally:
            rpc.closed = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _boot(self, rpc: Rpc) -> None:
        c = self.config
        station: dict[str, Any] = {"model": c.model, "vendorName": c.vendor}
        if c.serial_number:
            station["serialNumber"] = c.serial_number
        if c.firmware_version:
            station["firmwareVersion"] = c.firmware_version
        while True:
            try:
                answer = await rpc.call(
                    "BootNotification", {"chargingStation": station, "reason": self._boot_reason}
                )
            except CallFailed as error:
                if error.code == "Closed":
                    raise
                log.warning("OCPP boot: %s", error)
                await asyncio.sleep(c.boot_retry_s)
                continue
            interval = int(answer.get("interval", 0))
            if answer.get("status") == "Accepted":
                if interval > 0:
                    self.model.values["OCPPCommCtrlr.HeartbeatInterval"] = str(interval)
                self._boot_reason = "PowerUp"
                self.counters["boots"] = self.counters.get("boots", 0) + 1
                return
            self.link.detail = f"boot {answer.get('status')}: retry in {interval or c.boot_retry_s} s"
            self._on_link(self.link)
            await asyncio.sleep(interval if interval > 0 else c.boot_retry_s)

    def request_reconnect(self, reason: str) -> None:
        self._boot_reason = reason
        self._reconnect.set()

    # ------------------------------------------------------------ outgoing
    def send_live(self, action: str, payload: dict[str, Any]) -> None:
        """A message that matters only now (not queued while offline)."""
        if self.link.accepted:
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait((action, payload))

    def enqueue(self, action: str, payload: dict[str, Any]) -> None:
        """A transaction event: stored first, delivered in order (also after a restart)."""
        assert self.store is not None
        if not self.link.accepted:
            payload["offline"] = True
        self.store.enqueue(action, payload)
        self.counters["queued"] = self.counters.get("queued", 0) + 1
        self._wake_sender.set()

    async def _outbox_loop(self, rpc: Rpc) -> None:
        while not rpc.closed:
            action, payload = await self._outbox.get()
            try:
                await rpc.call(action, payload)
            except CallFailed as error:
                log.warning("OCPP %s", error)
                if error.code == "Timeout":
                    self.request_reconnect("PowerUp")

    async def _heartbeat_loop(self, rpc: Rpc) -> None:
        while not rpc.closed:
            await asyncio.sleep(self.model.number("OCPPCommCtrlr", "HeartbeatInterval", 300))
            await self.heartbeat(rpc)

    async def heartbeat(self, rpc: Rpc) -> None:
        try:
            await rpc.call("Heartbeat", {})
            self.counters["heartbeats"] = self.counters.get("heartbeats", 0) + 1
        except CallFailed as error:
            log.warning("OCPP %s", error)

    async def _sender_loop(self, rpc: Rpc) -> None:
        """Deliver queued transaction events oldest first; one at a time, acknowledged durably."""
        assert self.store is not None
        while not rpc.closed:
            pending = self.store.pending()
            if not pending:
                self._wake_sender.clear()
                await self._wake_sender.wait()
                continue
            seq = pending[0]
            item = self.store.read(seq)
            if item is None:
                continue
            action, payload = item
            try:
                await rpc.call(action, payload)
            except CallFailed as error:
                if error.code in ("Timeout", "Invalid", "Closed"):
                    log.warning("OCPP queued %s: %s; retried after reconnect", action, error)
                    self.request_reconnect("PowerUp")
                    return
                failures = self._failures.get(seq, 0) + 1
                self._failures[seq] = failures
                if failures < self.config.transaction_attempts:
                    await asyncio.sleep(min(2.0**failures, 30.0))
                    continue
                log.error("OCPP queued %s refused %d times (%s): dropped", action, failures, error)
                self.counters["dropped"] = self.counters.get("dropped", 0) + 1
            self._failures.pop(seq, None)
            self.store.delivered(seq)
            self.counters["delivered"] = self.counters.get("delivered", 0) + 1

    # ------------------------------------------------------------ periodic work
    async def _snapshot_loop(self) -> None:
        last: object = None
        while True:
            await asyncio.sleep(self.config.snapshot_interval_s)
            snap = self.snapshot
            if snap is None or snap is last:
                continue
            last = snap
            try:
                self.observe(*snap)
            except Exception:  # guarded: a bad snapshot must not stop the station
                log.exception("OCPP: snapshot handling failed")

    def observe(self, t: float, sessions: dict[int, Session]) -> None:
        events = self.tracker.observe(t, sessions)
        changed_tx = False
        for action, payload in events:
            if action == "TransactionEvent":
                self.enqueue(action, payload)
                changed_tx = True
                if payload["eventType"] == "Ended":
                    self.profiles.drop_transaction(payload["transactionInfo"]["transactionId"])
                    self.needs_sent.pop(payload["evse"]["id"], None)
            else:
                self.send_live(action, payload)
        self._charging_needs(sessions)
        if changed_tx:
            self.save_state()
            self.rebuild_plan()

    def _charging_needs(self, sessions: dict[int, Session]) -> None:
        """NotifyEVChargingNeeds when a session with energy requests starts or its requests change."""
        for evse, s in sessions.items():
            if not s.connected or s.e_target_wh is None or self.tracker.states[evse].transaction_id is None:
                continue
            key = (s.e_target_wh, s.e_min_wh, s.e_max_wh, s.e_v2x_min_wh, s.e_v2x_max_wh, s.departure_time)
            if self.needs_sent.get(evse) == key or not self.link.accepted or self.rpc is None:
                continue
            self.needs_sent[evse] = key
            self.send_live(
                "NotifyEVChargingNeeds", charging_needs(self.rpc.version, evse, s, self.config, self.wall())
            )

    async def _plan_loop(self) -> None:
        while True:
            await asyncio.sleep(PLAN_HORIZON_S / 4)
            self.rebuild_plan()

    async def _sample_loop(self) -> None:
        next_tx = next_aligned = 0.0
        while True:
            await asyncio.sleep(1.0)
            now = self.wall()
            if not self.tracker.known:
                continue
            tx_every = self.model.number(
                "SampledDataCtrlr", "TxUpdatedInterval", self.config.sample_interval_s
            )
            if now >= next_tx:
                if next_tx:
                    for action, payload in self.tracker.periodic_updates(now):
                        self.enqueue(action, payload)
                next_tx = now + tx_every
            aligned = self.model.number("AlignedDataCtrlr", "Interval", self.config.aligned_interval_s)
            if aligned > 0 and now >= next_aligned:
                if next_aligned:
                    for action, payload in self.tracker.aligned_meter_values(now):
                        self.send_live(action, payload)
                next_aligned = (math.floor(now / aligned) + 1) * aligned


async def _guarded(loop: Callable[[], Awaitable[None]]) -> None:
    """Run a background loop; a bug in it is logged and the loop starts again (never dies silently)."""
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("OCPP: %s failed; restarted in 1 s", getattr(loop, "__name__", "a loop"))
            await asyncio.sleep(1.0)


_MEASURED = (
    "Energy.Active.Import.Register",
    "Energy.Active.Export.Register",
    "Power.Active.Import",
    "Power.Active.Export",
    "SoC",
)


def charging_needs(version: str, evse: int, s: Session, config: OcppConfig, now: float) -> dict[str, Any]:
    """NotifyEVChargingNeeds from the session record's energy requests (V2X parameters in 2.1)."""
    from .schedule import format_time

    def num(value: float | None) -> float:
        return round(value, 1) if value is not None and math.isfinite(value) else 0.0

    needs: dict[str, Any] = {}
    if s.departure_time:
        needs["departureTime"] = format_time(float(s.departure_time))
    if version == "2.1":
        needs["requestedEnergyTransfer"] = "AC_BPT" if s.bidirectional_allowed else "AC_three_phase"
        v2x: dict[str, Any] = {"evTargetEnergyRequest": num(s.e_target_wh)}
        if s.e_min_wh is not None:
            v2x["evMinEnergyRequest"] = num(s.e_min_wh)
        if s.e_max_wh is not None:
            v2x["evMaxEnergyRequest"] = num(s.e_max_wh)
        if s.e_v2x_min_wh is not None:
            v2x["evMinV2XEnergyRequest"] = num(s.e_v2x_min_wh)
        if s.e_v2x_max_wh is not None:
            v2x["evMaxV2XEnergyRequest"] = num(s.e_v2x_max_wh)
        if s.p_charge_max_w is not None:
            v2x["maxChargePower"] = num(s.p_charge_max_w)
        if s.p_discharge_max_w is not None and s.bidirectional_allowed:
            v2x["maxDischargePower"] = num(s.p_discharge_max_w)
        needs["v2xChargingParameters"] = v2x
        return {"evseId": evse, "chargingNeeds": needs, "timestamp": format_time(now)}
    amps = config.voltage_v * config.phases
    needs["requestedEnergyTransfer"] = "AC_three_phase" if config.phases == 3 else "AC_single_phase"
    needs["acChargingParameters"] = {
        "energyAmount": max(0, round(num(s.e_target_wh))),
        "evMinCurrent": 0,
        "evMaxCurrent": max(0, round(num(s.p_charge_max_w) / amps)),
        "evMaxVoltage": round(config.voltage_v),
    }
    return {"evseId": evse, "chargingNeeds": needs}
