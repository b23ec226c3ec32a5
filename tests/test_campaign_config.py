import pytest
from pydantic import ValidationError

from uedsteer.controller.config import CampaignConfig, ParameterSpec


def test_defaults_work_and_budget_override():
    cfg = CampaignConfig()
    assert [p.name for p in cfg.parameters] == ["fluence", "wavelength"]
    assert CampaignConfig(budget=40).budget == 40
    assert cfg.parameter("fluence").safe_start == 0.5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"low": 5.0, "high": 1.0}, "low=5.0 must be below high=1.0"),
        ({"safe_start": 30.0}, "safe_start=30.0 is outside"),
        ({"hard_high": 5.0}, "must lie inside the hard limits"),
        ({"max_step": 0.0}, "max_step"),
        ({"log_scale": True, "low": 0.0}, "log_scale needs low > 0"),
        ({"name": "power"}, "name"),
    ],
)
def test_parameter_validation_names_the_field(kwargs, match):
    base = {"name": "fluence", "low": 0.2, "high": 12.0, "max_step": 1.0, "safe_start": 0.5}
    with pytest.raises(ValidationError, match=match):
        ParameterSpec(**{**base, **kwargs})


def test_campaign_validation(tmp_path):
    with pytest.raises(ValidationError, match="budgett"):
        CampaignConfig(budgett=3)
    with pytest.raises(ValidationError, match="also steered"):
        CampaignConfig(fixed={"fluence": 1.0})
    with pytest.raises(ValidationError, match="objective"):
        CampaignConfig(objective="happiness")
    path = tmp_path / "c.yaml"
    path.write_text(
        "budget: 12\nobjective: progress\nconstraints:\n  - {score: line_distance, bound: 2.0}\n"
    )
    cfg = CampaignConfig.from_yaml(path)
    assert cfg.budget == 12 and cfg.constraints[0].bound == 2.0
    path.write_text("damage_bound: 1.5\n")
    with pytest.raises(ValidationError, match="damage_bound"):
        CampaignConfig.from_yaml(path)


def test_the_readme_configuration_example_is_valid():
    """The YAML block of the README's campaign section is a working configuration."""
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "parameters:" in b]
    assert blocks, "the README shows a campaign configuration"
    cfg = CampaignConfig.model_validate(yaml.safe_load(blocks[0]))
    assert cfg.approach_width == 0.1 and cfg.on_damage == "halt"
    assert cfg.parameter("wavelength").high == 1100
