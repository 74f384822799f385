"""pipelines.layout is the one table of where stages write: the dvc.yaml files must declare the same. The
library's layers: lawm never imports pipelines, and no lawm module imports itself through others."""

import yaml

from pipelines.code_deps import closure, imports
from pipelines.layout import METRICS, PIPELINE_FILES, STAGE_OUTPUTS
from tests.conftest import ROOT


def declared(entries: list) -> list[str]:
    """The paths of a dvc.yaml outs/metrics list (an entry is a path or {path: options})."""
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def test_dvc_yaml_declares_the_layout_outputs_and_metrics():
    files = [yaml.safe_load((ROOT / file).read_text()) for file in PIPELINE_FILES]
    stages = {name: stage for doc in files for name, stage in doc["stages"].items()}
    assert set(stages) == set(STAGE_OUTPUTS) and sum(len(doc["stages"]) for doc in files) == len(stages)
    for file, doc in zip(PIPELINE_FILES, files):  # every stage runs, and names its paths, from the root
        for name, stage in doc["stages"].items():
            assert ((ROOT / file).parent / stage.get("wdir", ".")).resolve() == ROOT.resolve(), name
    for name, stage in stages.items():
        assert declared(stage.get("outs", [])) == [str(p) for p in STAGE_OUTPUTS[name]], name
        items = [f"${{item.{key}}}" for key in ("variant", "domain") if key in stage.get("matrix", {})]
        metrics = declared(stage.get("metrics", []))
        if metrics:  # written by pipelines.stage.write_metrics(name/items...)
            assert metrics == [str(METRICS.joinpath(name, *items)) + ".json" if items
                               else str(METRICS / f"{name}.json")], name


def library_modules() -> list[str]:
    """Every module of `lawm`, by its dotted name."""
    files = sorted((ROOT / "lawm").rglob("*.py"))
    return [".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for f in files]


def test_the_library_never_imports_the_pipelines_and_its_modules_import_no_cycle():
    modules = library_modules()
    for module in modules:
        assert not any(p.is_relative_to(ROOT / "pipelines") for p in closure(module)), module
    # what each module imports, leaving out the packages it lives in (Python runs those first anyway)
    below = {m: {d for d in imports(m) if not m.startswith(d + ".") and d != m} for m in modules}
    for start in modules:  # depth-first from every module: no path may lead back to it
        seen, todo = set(), list(below[start])
        while todo:
            current = todo.pop()
            assert current != start, f"{start} imports itself through {sorted(seen)}"
            if current not in seen:
                seen.add(current)
                todo.extend(below[current])
