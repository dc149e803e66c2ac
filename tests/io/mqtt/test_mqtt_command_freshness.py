"""Freshness of MQTT command inputs, in virtual time (the executor's clock is a ``FakeClock``, the
session's reconnect backoff a ``ManualTime``), through a real Mosquitto on 127.0.0.1: every accepted
message is a sample stamped when it arrived; a command with ``stale_s`` turns STALE when the cloud is
silent for longer (COMM_LOST when it was never heard); every command input is COMM_LOST while the broker
is away; the retained command the broker re-delivers after a reconnect refreshes it (not a replay)."""

from __future__ import annotations

import json
import time

from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import ManualTime
from plcrun.executor.driver_api import Quality, Sample
from plcrun.io.mqtt import Backhaul

from tests.io.mqtt.conftest import ConfigFactory
from tests.io.mqtt.rig import GATEWAY, FakeClock, wait_until
from tests.support.mosquitto import Mosquitto, MqttProbe

S = 1_000_000_000
ENABLE = f"plcrun/{GATEWAY}/command/enable"


def enable(ident: str, value: bool = True) -> bytes:
    return json.dumps({"value": value, "id": ident, "expires": time.time() + 600}).encode()


def counter(backhaul: Backhaul, name: str) -> int:
    return backhaul.status().counters[name]


def test_command_inputs_are_fresh_while_heard_stale_when_silent_and_comm_lost_without_broker(
    make_config: ConfigFactory, broker: Mosquitto, probe: MqttProbe
) -> None:
    config = make_config(broker.port, extra="stale_s = 2.0")  # the enable command's table
    clock, backoff = FakeClock(), ManualTime()
    backhaul = Backhaul(config, AlarmBus(), dict, GATEWAY, worker_time=backoff)
    curve_paths = {p for p in backhaul.input_paths() if p != "main.enable"}
    seen: dict[str, Sample] = {}

    def take() -> dict[str, Sample]:
        new = dict(backhaul.read_inputs(clock.now))
        seen.update(new)
        return new

    def quality(path: str = "main.enable") -> Quality:
        take()
        return seen[path].quality

    assert quality() is Quality.COMM_LOST  # no broker connection yet
    backhaul.start(clock)
    try:
        assert wait_until(lambda: backhaul.status().connected)
        # connected, nothing received yet: the inputs are as at start (the program's own values)
        assert quality() is Quality.UNBOUND and {seen[p].quality for p in curve_paths} <= {Quality.UNBOUND}
        # the enable command must come within stale_s of the connection: never heard is COMM_LOST
        clock.now = 2 * S
        assert take() == {}
        clock.now = 2 * S + 1
        assert quality() is Quality.COMM_LOST
        assert seen["main.enable"] == Sample(None, Quality.COMM_LOST, 0)  # the program keeps its value
        assert all(seen[p].quality is Quality.UNBOUND for p in curve_paths)  # no stale_s: no deadline

        # every accepted message is a sample, stamped when it arrived
        clock.now = 3 * S
        probe.publish(ENABLE, enable("en-1"), retain=True)
        assert wait_until(lambda: "main.enable" in take() and seen["main.enable"].quality is Quality.GOOD)
        assert seen["main.enable"] == Sample(True, Quality.GOOD, 3 * S)
        clock.now = 4 * S
        probe.publish(ENABLE, enable("en-2"), retain=True)  # the same value again: the cloud refreshes
        assert wait_until(lambda: "main.enable" in take())
        assert seen["main.enable"] == Sample(True, Quality.GOOD, 4 * S)

        # the cloud falls silent: STALE after stale_s, with the last value's arrival time
        clock.now = 6 * S
        assert take() == {}
        clock.now = 6 * S + 1
        assert quality() is Quality.STALE
        assert seen["main.enable"] == Sample(None, Quality.STALE, 4 * S)
        clock.now = 7 * S
        probe.publish(ENABLE, enable("en-3"), retain=True)
        assert wait_until(lambda: quality() is Quality.GOOD)
        assert seen["main.enable"].timestamp_ns == 7 * S

        # the broker goes away: every command input is COMM_LOST, keeping what it had
        broker.stop()
        assert wait_until(lambda: quality() is Quality.COMM_LOST)
        assert seen["main.enable"] == Sample(None, Quality.COMM_LOST, 7 * S)
        assert all(seen[p].quality is Quality.COMM_LOST for p in curve_paths)
        accepted, rejected = counter(backhaul, "commands_accepted"), counter(backhaul, "commands_rejected")

        # back (it kept the retained message): the session reconnects on its backoff, in virtual time,
        # and the broker re-delivers the retained command: a refresh, not a replay
        broker.start()
        clock.now = 8 * S
        for _ in range(100):
            if wait_until(lambda: backhaul.status().connected, 0.2):
                break
            backoff.advance(50_000_000)
        assert wait_until(lambda: counter(backhaul, "commands_refreshed") == 1)
        assert quality() is Quality.GOOD
        assert seen["main.enable"] == Sample(True, Quality.GOOD, 8 * S)
        assert all(seen[p].quality is Quality.UNBOUND for p in curve_paths)  # never received
        assert counter(backhaul, "commands_accepted") == accepted  # not a new command
        assert counter(backhaul, "commands_rejected") == rejected  # and not refused as a replay
    finally:
        backhaul.stop()
