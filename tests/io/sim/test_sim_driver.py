"""SimDriver: paths, first and changed samples, setpoints, slots, determinism in virtual and real time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from plcrun.executor.driver_api import Driver, Quality
from plcrun.io.config_errors import ConfigError
from plcrun.io.sim import EV_INPUT_FIELDS, Scenario, SimDriver, load_scenario
from plcrun.io.sim.history import SCALARS

from tests.io.sim.simrig import METER, PREFIX, StepClock, fcr_controller, run_closed_loop

ScenarioFactory = Callable[..., Scenario]

THREE_CARS = """
[scenario]
duration_s = 10.0
start_epoch_s = 1700000000
[grid]
nominal_hz = 50.0
[site]
base_load_w = 1000.0
[fleet]
lag_s = 0.5
report_period_s = 0.5
[fleet.defaults]
soc_pct = 50.0
min_soc_pct = 30.0
target_soc_pct = 80.0
[[fleet.evs]]
model = "midsize_bidi"
departure_time_s = 3600.0
[[fleet.evs]]
model = "compact_ac"
[[fleet.evs]]
model = "compact_bidi"
arrive_s = 2.0
depart_s = 6.0
"""


@pytest.fixture
def three(scenario_from_text: ScenarioFactory) -> Scenario:
    return scenario_from_text(THREE_CARS)


def ev(i: int, field: str) -> str:
    return f"{PREFIX}[{i}].{field}"


def test_paths_cover_meter_and_every_session_field(three: Scenario) -> None:
    driver = SimDriver(three, METER, PREFIX, n_evs=5)
    assert isinstance(driver, Driver)
    paths = driver.input_paths()
    assert set(METER.values()) <= paths
    assert {ev(i, f) for i in range(1, 6) for f in EV_INPUT_FIELDS} <= paths
    assert len(paths) == 3 + 5 * len(EV_INPUT_FIELDS)
    assert driver.output_paths() == {ev(i, "p_setpoint_w") for i in range(1, 6)}
    zero_based = SimDriver(three, {}, "evs", first_index=0, ev_fields=("connected",))
    assert zero_based.input_paths() == {"evs[0].connected", "evs[1].connected", "evs[2].connected"}


def test_bad_bindings_are_rejected(three: Scenario) -> None:
    with pytest.raises(ConfigError, match="binds only 2 sessions") as error:
        SimDriver(three, METER, PREFIX, n_evs=2)
    assert error.value.key == "fleet.n_evs"
    with pytest.raises(ValueError, match="unknown meter channel"):
        SimDriver(three, {"freq": "x"}, PREFIX)
    with pytest.raises(ValueError, match="unknown EV field"):
        SimDriver(three, METER, PREFIX, ev_fields=("soc",))


def test_first_read_reports_every_path_with_session_values(three: Scenario) -> None:
    driver = SimDriver(three, METER, PREFIX, n_evs=4)
    driver.start(StepClock())
    first = driver.read_inputs(0)
    assert set(first) == driver.input_paths()
    assert all(s.quality == Quality.GOOD and s.timestamp_ns == 0 for s in first.values())
    assert first[METER["frequency_hz"]].value == 50.0
    assert first[METER["power_w"]].value == 1000.0
    assert first[ev(1, "connected")].value is True
    assert first[ev(1, "bidirectional_allowed")].value is True
    assert first[ev(1, "departure_time")].value == 1_700_003_600
    assert first[ev(1, "soc_pct")].value == 50.0
    assert first[ev(1, "e_target_wh")].value == pytest.approx(0.30 * 64000)
    assert first[ev(1, "e_min_wh")].value == pytest.approx(-0.20 * 64000)
    assert first[ev(1, "e_max_wh")].value == pytest.approx(0.50 * 64000)
    assert first[ev(1, "p_charge_min_w")].value == pytest.approx(4140.0)
    # a simulated car's V2X energy requests are its floor and full energies; it talks -20 dynamic, EIM
    assert first[ev(1, "e_v2x_min_wh")].value == first[ev(1, "e_min_wh")].value
    assert first[ev(1, "e_v2x_max_wh")].value == first[ev(1, "e_max_wh")].value
    link = ("protocol", "energy_mode", "control_mode", "auth_mode")
    assert [first[ev(1, f)].value for f in link] == [20, 4, 2, 1]  # DC BPT
    assert [first[ev(2, f)].value for f in link] == [20, 2, 2, 1]  # DC only
    assert [first[ev(3, f)].value for f in link] == [0, 0, 0, 0]  # nobody there yet
    assert first[ev(2, "bidirectional_allowed")].value is False
    assert first[ev(2, "p_discharge_max_w")].value == 0.0
    assert first[ev(2, "departure_time")].value == 0  # unknown
    assert first[ev(3, "connected")].value is False  # arrives at 2 s
    assert first[ev(3, "soc_pct")].value == 0.0
    assert first[ev(4, "connected")].value is False  # a slot without a car
    assert driver.read_inputs(0) == {}  # nothing new at the same instant


def test_later_reads_return_only_new_samples(three: Scenario) -> None:
    driver = SimDriver(three, METER, PREFIX)
    driver.read_inputs(0)
    per_scan = [driver.read_inputs(k * 10_000_000) for k in range(1, 101)]
    # the meter is read every scan; static session fields never repeat
    assert all(METER["frequency_hz"] in s for s in per_scan)
    assert not any(ev(1, "p_charge_max_w") in s for s in per_scan[:99])
    # measured fields come once per report period (50 scans), staggered per car
    soc_scans = [k + 1 for k, s in enumerate(per_scan) if ev(1, "soc_pct") in s]
    assert soc_scans == [50, 100]
    soc2_scans = [k + 1 for k, s in enumerate(per_scan) if ev(2, "soc_pct") in s]
    assert soc2_scans == [16, 66]
    assert per_scan[49][ev(1, "soc_pct")].timestamp_ns == 500_000_000


def test_setpoints_drive_the_cars_and_arrivals_report_at_once(three: Scenario) -> None:
    driver = SimDriver(three, METER, PREFIX, n_evs=4)
    driver.read_inputs(0)
    seen: dict[str, object] = {}
    arrival_scan = None
    for k in range(1, 401):
        samples = driver.read_inputs(k * 10_000_000)
        if ev(3, "connected") in samples and arrival_scan is None:
            arrival_scan = k
            assert samples[ev(3, "soc_pct")].value == 50.0
        seen.update({p: s.value for p, s in samples.items()})
        driver.write_outputs(
            k * 10_000_000,
            {ev(1, "p_setpoint_w"): -8000.0, ev(2, "p_setpoint_w"): 5000.0, ev(4, "p_setpoint_w"): 7000.0},
        )
    assert arrival_scan == 200
    assert seen[ev(1, "p_present_w")] == pytest.approx(-8000.0, abs=10.0)  # 8 lags after the step
    assert seen[ev(2, "p_present_w")] == pytest.approx(5000.0, abs=10.0)
    assert seen[METER["power_w"]] == pytest.approx(1000.0 - 3000.0, abs=10.0)
    assert seen[ev(1, "soc_pct")] < 50.0 < seen[ev(2, "soc_pct")]
    history = driver.history()
    assert history.setpoint_w[-1] == -3000.0  # slot 4 has no car: its setpoint is ignored
    assert driver.status().counters["evs_connected"] == 3


def test_not_a_number_setpoints_are_counted_and_treated_as_zero(three: Scenario) -> None:
    driver = SimDriver(three, METER, PREFIX)
    driver.read_inputs(0)
    driver.write_outputs(0, {ev(1, "p_setpoint_w"): float("nan"), ev(2, "p_setpoint_w"): "x"})
    assert driver.bad_setpoints == 2 and driver.fleet.setpoint_w[0] == 0.0


def test_the_same_run_twice_gives_identical_histories() -> None:
    scenario = load_scenario("quiet_grid")
    first = run_closed_loop(scenario, fcr_controller()).history()
    again = run_closed_loop(scenario, fcr_controller()).history()
    for name in SCALARS:
        assert np.array_equal(first.series(name), again.series(name), equal_nan=True), name
    assert np.array_equal(first.per_ev_power_w, again.per_ev_power_w)
    assert np.std(first.meter_hz) > 0.002  # the noise is there


def test_the_virtual_time_history_batches_give_the_same_history() -> None:
    # larger fill batches in virtual time (_FILL_CELLS_VIRTUAL): the same rows, bit for bit
    scenario = load_scenario("loss_of_grid")
    real = run_closed_loop(scenario, fcr_controller())
    virtual = run_closed_loop(scenario, fcr_controller(), realtime=False)
    assert virtual._fill_batch > real._fill_batch
    one, other = real.history(), virtual.history()
    for name in SCALARS:
        assert np.array_equal(one.series(name), other.series(name), equal_nan=True), name
    assert np.array_equal(one.per_ev_power_w, other.per_ev_power_w)
    assert np.array_equal(one.lowest_soc_pct, other.lowest_soc_pct, equal_nan=True)


def test_jittery_real_time_calls_land_on_the_same_steps(three: Scenario) -> None:
    exact = SimDriver(three, METER, PREFIX)
    jittery = SimDriver(three, METER, PREFIX)
    t0 = 5_000_000_000  # the clock need not start at zero
    jittery.start(StepClock())  # start() before the first read pins time 0 to the clock
    jittery._t0_ns = t0
    rng = np.random.default_rng(1)
    for k in range(300):
        setpoint = {ev(1, "p_setpoint_w"): -6000.0 if k > 50 else 0.0}
        exact.read_inputs(k * 10_000_000)
        exact.write_outputs(0, setpoint)
        jittery.read_inputs(t0 + k * 10_000_000 + int(rng.integers(-4_000_000, 4_000_000)))
        jittery.write_outputs(0, setpoint)
    assert np.array_equal(exact.history().fleet_power_w, jittery.history().fleet_power_w)


def test_a_late_scan_advances_several_steps(three: Scenario) -> None:
    driver = SimDriver(three, METER, PREFIX)
    driver.read_inputs(0)
    samples = driver.read_inputs(1_000_000_000)
    assert driver.step_index == 100 and len(driver.history()) == 101
    assert samples[METER["frequency_hz"]].timestamp_ns == 1_000_000_000


def test_history_and_status(three: Scenario) -> None:
    driver = run_closed_loop(three)
    history = driver.history()
    assert len(history) == three.n_steps + 1
    assert history.t_s[-1] == pytest.approx(10.0)
    assert history.per_ev_power_w.shape == (three.n_steps + 1, 3)
    assert list(np.unique(history.connected)) == [2.0, 3.0]
    assert driver.done(10_000_000_000) and not driver.done(9_990_000_000)
    status = driver.status()
    assert status.kind == "sim" and status.connected
    assert status.points[METER["frequency_hz"]] == Quality.GOOD


def test_per_car_history_is_thinned_for_big_fleets(scenario_from_text: ScenarioFactory) -> None:
    scenario = scenario_from_text("[scenario]\nduration_s = 60.0\n[fleet]\nn_evs = 1000\n")
    driver = SimDriver(scenario, METER, PREFIX)
    for k in range(0, 500):
        driver.read_inputs(k * 10_000_000)
    history = driver.history()
    assert driver.recorder.per_ev_stride == 2
    assert history.per_ev_power_w.shape == (250, 1000)
    assert history.per_ev_power_w.dtype == np.float32


def test_history_of_an_endless_run_keeps_the_recent_past_in_bounded_memory(three: Scenario) -> None:
    driver = SimDriver(three, METER, PREFIX, max_history_rows=400)
    for k in range(2000):  # twice the scenario: a real-time run goes on after its duration
        driver.read_inputs(k * 10_000_000)
    history = driver.history()
    assert 200 <= len(history) <= 400
    assert history.t_s[-1] == pytest.approx(19.99)
    assert np.allclose(np.diff(history.t_s), 0.01)
    assert len(driver.recorder._scalars["t_s"]) == 400
    assert history.per_ev_t_s[-1] == pytest.approx(19.99) and len(history.per_ev_t_s) <= 401


def test_the_end_of_the_scenario_is_logged_once(three: Scenario, caplog: pytest.LogCaptureFixture) -> None:
    driver = SimDriver(three, METER, PREFIX, 3)
    with caplog.at_level("INFO", logger="plcrun.sim"):
        for step in range(three.n_steps + 50):
            driver.read_inputs(step * three.scan_period_ns)
    ends = [r.message for r in caplog.records if "reached the end of its scenario" in r.message]
    assert ends == [f"simulation '{three.name}' reached the end of its scenario (10 s)"]
