"""The [everest] table: defaults, the paths it binds, and errors that name file, key and problem."""

from __future__ import annotations

from typing import Any

import pytest
from plcrun.io.config_errors import ConfigError
from plcrun.io.everest import parse_everest_config
from plcrun.io.everest.messages import iso_utc, parse_time

from tests.io.everest.everest_rig import catalog, everest_table


def parse(**options: Any) -> Any:
    return parse_everest_config(everest_table(1883, **options), "site.toml", catalog())


def test_defaults_and_bound_paths() -> None:
    config = parse()
    assert (config.host, config.port, config.api_type, config.limits_api_type) == (
        "127.0.0.1",
        1883,
        "evse_manager_consumer",
        "external_energy_limits_consumer",
    )
    first, second = config.evses
    assert first.inputs["soc_pct"] == "main.evs[1].soc_pct"
    assert first.inputs["min_soc_pct"] == "main.evs[1].min_soc_pct"  # min_soc_pct is configured
    assert first.output == "main.evs[1].p_setpoint_w"
    assert "min_soc_pct" not in second.inputs and "e_min_wh" not in second.inputs
    assert second.output is None and second.limits_module is None
    assert (
        config.topic("evse_1", "e2m", "ev_info") == "everest_api/1/evse_manager_consumer/evse_1/e2m/ev_info"
    )


def test_fields_restrict_what_is_bound() -> None:
    evse = {"evse_1": {"slot": 1, "fields": ["connected", "p_present_w"]}}
    config = parse(evse=evse)
    assert dict(config.evses[0].inputs) == {
        "connected": "main.evs[1].connected",
        "p_present_w": "main.evs[1].p_present_w",
    }


def _error(**options: Any) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        parse(**options)
    assert error.value.file == "site.toml"
    return error.value


@pytest.mark.parametrize(
    ("options", "key", "problem"),
    [
        ({"refresh_s": 10.0}, "everest.refresh_s", "must be below 10 s: EVerest stops the power flow"),
        ({"refresh_s": 12}, "everest.refresh_s", "must be below 10 s"),
        ({"host": "broker.example"}, "everest.host", "plain MQTT to broker.example is not allowed"),
        ({"prefix": "main.cars"}, "everest.prefix", "unknown variable 'main.cars[1].connected'"),
        ({"api_type": "evse/manager"}, "everest.api_type", "cannot be part of an MQTT topic"),
        ({"qos": 2}, "everest.qos", "between 0 and 1"),
        ({"connected_states": ["Charging", "Driving"]}, "everest.connected_states", "'Driving' is not"),
        ({"stale_after_s": "3"}, "everest.stale_after_s", "must be a number"),
        ({"stale_afterr_s": 3}, "everest.stale_afterr_s", "unknown key"),
        ({"evse": {}}, "everest.evse", "names no EVSE"),
        ({"evse": {"evse_1": {"slot": 3}}}, "everest.evse.evse_1.slot", "unknown variable 'main.evs[3].connected'"),
        ({"evse": {"a": {"slot": 1}, "b": {"slot": 1}}}, "everest.evse.b.slot", "slot 1 is already used by a"),
        ({"evse": {"a": {"slot": 1, "fields": ["soc"]}}}, "everest.evse.a.fields", "'soc' is not a field"),
        ({"evse": {"a": {"slot": 1, "fields": ["e_min_wh"]}}}, "everest.evse.a.fields", "needs min_soc_pct"),
        ({"evse": {"a": {"slot": 1, "fields": ["p_setpoint_w"]}}}, "everest.evse.a.fields", "limits_module"),
        ({"evse": {"a": {"slot": 1, "min_soc_pct": 120}}}, "everest.evse.a.min_soc_pct", "between 0 and 100"),
        ({"evse": {"a": {"slot": 1, "limits_module": "l"}, "b": {"slot": 2, "limits_module": "l"}}},
         "everest.evse.b.limits_module", "already takes the setpoints of a"),
    ],
)  # fmt: skip
def test_errors_name_file_key_and_problem(options: dict[str, Any], key: str, problem: str) -> None:
    error = _error(**options)
    assert error.key == key
    assert problem in error.problem


def test_a_field_bound_to_a_variable_of_the_wrong_type_is_refused() -> None:
    wrong = {**catalog(), "main.evs[1].departure_time": "REAL"}
    with pytest.raises(ConfigError) as error:
        parse_everest_config(everest_table(1883), "site.toml", wrong)
    assert error.value.key == "everest.evse.evse_1.slot"
    assert "main.evs[1].departure_time is REAL, but departure_time needs LINT" in error.value.problem


def test_times_are_rfc3339_utc() -> None:
    assert parse_time("2025-04-28T16:00:00Z") == 1745856000
    assert parse_time("2025-04-28T18:00:00+02:00") == 1745856000
    assert parse_time("2025-04-28T16:00:00") is None  # no zone: ambiguous
    assert parse_time(1745856000) is None
    assert iso_utc(1745856000.25) == "2025-04-28T16:00:00.250Z"
