"""The settings registry and the detector fault: one definition that the configuration, the
simulated devices and the plans all read."""

import ast

import pytest

from uedsteer.controller.config import SETTINGS as CONFIG_SETTINGS
from uedsteer.controller.config import ParameterSpec
from uedsteer.sim_devices import contracts
from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.sim_devices.contracts import SETTING_NAMES, SETTING_UNITS, SETTINGS, Setting, setting


def test_the_registry_is_the_one_list_of_settings():
    assert SETTING_NAMES == ("fluence", "wavelength", "charge", "delay") == CONFIG_SETTINGS
    assert dict(SETTING_UNITS) == {
        "fluence": "mJ/cm²",
        "wavelength": "nm",
        "charge": "fC",
        "delay": "ps",
    }
    assert [n for n, s in SETTINGS.items() if s.acts_on == "sample"] == ["fluence", "wavelength"]
    field = ParameterSpec.model_json_schema()["properties"]["name"]
    assert field["enum"] == list(SETTING_NAMES)


def test_the_simulated_devices_report_the_registry_units():
    bl = SimulatedBeamline()
    for name, signal in bl.settings.items():
        assert signal.describe()[signal.name]["units"] == SETTINGS[name].device_units


def test_a_setting_is_validated_and_an_unknown_name_is_named():
    with pytest.raises(ValueError, match="'pressure' is not a setting; known: fluence, wavelength"):
        setting("pressure")
    with pytest.raises(ValueError, match="acts_on='pump' is not one of"):
        Setting("pressure", "mbar", "mbar", "pump", "chamber pressure")
    with pytest.raises(ValueError, match="must be ASCII"):
        Setting("pressure", "µbar", "µbar", "sample", "chamber pressure")


def test_the_contract_module_imports_nothing_heavy():
    """Plans that drive a real beamline import DetectorFault from here, not the simulator."""
    tree = ast.parse(open(contracts.__file__, encoding="utf-8").read())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules <= {"__future__", "collections.abc", "dataclasses", "types", "typing"}
    from uedsteer.sim_devices.devices import DetectorFault

    assert DetectorFault is contracts.DetectorFault
