"""pipelines.layout is the one table of where stages write: dvc.yaml must declare the same."""

import yaml

from pipelines.layout import METRICS, STAGE_OUTPUTS
from tests.conftest import ROOT


def declared(entries: list) -> list[str]:
    """The paths of a dvc.yaml outs/metrics list (an entry is a path or {path: options})."""
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def test_dvc_yaml_declares_the_layout_outputs_and_metrics():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STAGE_OUTPUTS)
    for name, stage in stages.items():
        assert declared(stage.get("outs", [])) == [str(p) for p in STAGE_OUTPUTS[name]], name
        items = [f"${{item.{key}}}" for key in ("variant", "domain") if key in stage.get("matrix", {})]
        metrics = declared(stage.get("metrics", []))
        if metrics:  # written by pipelines.stage.write_metrics(name/items...)
            assert metrics == [str(METRICS.joinpath(name, *items)) + ".json" if items
                               else str(METRICS / f"{name}.json")], name
