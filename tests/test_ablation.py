"""The ablation table: a row run as a real `dvc exp run` on a copy of the project, then tabulated."""

import json
import re
import subprocess
import sys

import pytest

from lawm.config import leaves, load_params, with_overrides
from pipelines import ablation
from pipelines.layout import LOCK_FILES, PARAMS
from tests.test_dvc import project, run  # noqa: F401  (the fixture: a git + DVC copy with tiny params)


def markdown_rows(table: str) -> dict[str, dict[str, str]]:
    """Ablation name -> {column: cell} of a pipe table."""
    lines = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
             if line.startswith("|")]
    header, body = lines[0], lines[2:]
    return {cells[0]: dict(zip(header, cells)) for cells in body}


def test_a_row_runs_as_an_experiment_and_fills_its_row(project):  # noqa: F811
    repo, env = project
    run([sys.executable, "-m", "dvc", "repro"], repo, env)  # the defaults, committed with their metrics
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "defaults"], repo, env)
    params_before, locks_before = (repo / "params.yaml").read_bytes(), [(repo / f).read_bytes() for f in LOCK_FILES]
    (repo / "params.yaml").write_bytes(params_before + b"# an uncommitted edit\n")
    refused = subprocess.run([sys.executable, "-m", "pipelines.ablation", "run", "no_blur"], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "differ from HEAD" in refused.stderr  # rows start from the committed defaults
    (repo / "params.yaml").write_bytes(params_before)

    out = run([sys.executable, "-m", "pipelines.ablation", "run", "no_blur", "--variants", "none"], repo, env)
    assert "ablation no_blur+none:" in out and " min" in out  # named with the one variant it trains
    assert "Running stage 'worlds'" not in out  # from the committed defaults, only what the override changes
    assert (repo / "params.yaml").read_bytes() == params_before  # the defaults are back after the row
    assert [(repo / f).read_bytes() for f in LOCK_FILES] == locks_before
    shown = json.loads(exp_show(repo, env))
    entries = {exp["name"]: exp["revs"][0] for entry in shown for exp in entry.get("experiments") or []}
    ran = entries["ablation-no_blur+none"]["data"]["params"]["params.yaml"]["data"]
    assert ran["features"]["encoder"]["blur"] == 0
    assert ran["latent_actions"]["variants"] == ["none"] and ran["controller"]["variants"] == ["none"]  # no `zero`
    assert "no_blur+none" in json.loads((repo / "data/ablation/seconds.json").read_text())

    rows = markdown_rows(run([sys.executable, "-m", "pipelines.ablation", "table"], repo, env))
    assert re.match(r"-?\d+\.\d+", rows["defaults"]["success arm WM"])  # read from the committed metrics
    assert rows["patch8"]["experiment"] == "not run"
    row = rows["no_blur"]
    assert row["experiment"] != "not run" and row["minutes"] != "-"
    assert (row["variants"], rows["defaults"]["variants"], rows["patch8"]["variants"]) == ("none", "all", "-")
    for column in ("z→a R² arm", "success arm latent", "success arm WM"):
        assert re.match(r"-?\d+\.\d+", row[column]), (column, row[column])
    assert row["z→a R² arm"].endswith("(none)")


def exp_show(repo, env) -> str:
    """`dvc exp show --json`: its stdout alone (the test helper `run` joins stderr to it)."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_table_goes_between_the_markers(tmp_path):
    doc = tmp_path / "findings.md"
    doc.write_text(f"# Findings\n\n{ablation.START}\nold table\n{ablation.END}\n\nafter\n")
    ablation.insert_table(doc, "| a |\n|:--|\n| 1 |")
    assert doc.read_text() == f"# Findings\n\n{ablation.START}\n| a |\n|:--|\n| 1 |\n{ablation.END}\n\nafter\n"
    doc.write_text("# Findings without markers\n")
    with pytest.raises(SystemExit, match="ablation:start"):
        ablation.insert_table(doc, "| a |")
    assert doc.read_text() == "# Findings without markers\n"  # left alone


def test_rows_run_at_each_seed_and_the_defaults_only_at_other_seeds():
    patch8 = ablation.select(["patch8"])[0]
    trials = ablation.trials([ablation.DEFAULTS, patch8], [0, 1, 1, 2], committed=0)
    assert [(row.name, seed) for row, seed in trials] == [("defaults", 1), ("defaults", 2), ("patch8", None),
                                                          ("patch8", 1), ("patch8", 2)]
    assert ablation.experiment_name(patch8, 1) == "ablation-patch8-seed1"
    assert ablation.experiment_name(patch8) == "ablation-patch8"
    assert ablation.experiment_name(patch8, 1, ["none", "none_app_d"]) == "ablation-patch8-seed1+none+none_app_d"
    with pytest.raises(SystemExit, match="unknown ablation"):
        ablation.select(["patch9"])


def test_variants_restrict_training_and_the_controllers_in_the_committed_order():
    head = {"latent_actions": {"variants": ["sparse", "none", "zero", "none_app_d"]},
            "controller": {"variants": ["sparse", "none", "none_app_d"]}}
    only = ablation.only_variants(["none_app_d", "zero", "none"], head)
    assert only == ["none", "zero", "none_app_d"]
    assert ablation.variant_overrides(only, head) == {
        "latent_actions.variants": ["none", "zero", "none_app_d"], "controller.variants": ["none", "none_app_d"]}
    assert ablation.only_variants(["zero", "none_app_d", "none", "sparse"], head) is None  # all: the plain name
    assert ablation.only_variants(None, head) is None and ablation.variant_overrides(None, head) == {}
    with pytest.raises(SystemExit, match="unknown latent-action variant.*nonee"):
        ablation.only_variants(["nonee"], head)


def planning_entry(rev: str, seed: int, arm: dict[str, float], nav: dict[str, float]) -> dict:
    """A `dvc exp show` entry with its params and evaluate_planning.json: planner -> closed-loop success."""
    params = {"seed": seed, "latent_actions": {"domain_share": 0.0, "variant_domain_share": {"none_app_d": 0.25}}}
    planning = {domain: {"closed_loop": {p: {"success": s} for p, s in rates.items()}}
                for domain, rates in (("arm", arm), ("nav", nav))}
    return {"rev": rev, "data": {"params": {"params.yaml": {"data": params}},
                                 "metrics": {"data/metrics/evaluate_planning.json": {"data": planning}}}}


def test_the_seeds_table_averages_each_rows_seed_runs(monkeypatch):
    def entry(rev, seed, wm, none, noisy, app_d):
        return planning_entry(rev, seed, {"world_model": wm, "random": 0.02, "none": none, "noisy": noisy,
                                          "none_app_d": app_d}, {"world_model": wm / 2, "none": none / 2})

    head = entry("a" * 40, 0, 0.6, 0.3, 0.1, 0.5)
    runs = {"ablation-patch8": entry("b" * 40, 0, 0.7, 0.2, 0.4, 0.6),  # noisy is this seed's best latent
            "ablation-patch8-seed1": entry("c" * 40, 1, 0.5, 0.3, 0.1, 0.4),
            "ablation-patch8_gain_norm-seed1": entry("d" * 40, 1, 0.9, 0.9, 0.9, 0.9),  # another row's
            "ablation-patch8-seed1-new": entry("9" * 40, 1, 0.9, 0.9, 0.9, 0.9),  # a replacement left half-way
            "ablation-patch8-seed2+none-new": entry("8" * 40, 2, 0.9, 0.9, 0.9, 0.9),  # and one of a variant run
            "ablation-patch8-seed2+my-variant": planning_entry("7" * 40, 2, {"world_model": 0.6}, {"world_model": 0.3}),
            # seed 2 in two runs, each training one variant: the seeds table takes the best of both
            "ablation-patch8-seed2+none_app_d": planning_entry("0" * 40, 2, {"world_model": 0.6, "none_app_d": 0.7},
                                                               {"world_model": 0.3, "none_app_d": 0.2}),
            "ablation-patch8-seed2+none": planning_entry("f" * 40, 2, {"world_model": 0.6, "none": 0.5},
                                                         {"world_model": 0.3, "none": 0.25}),
            "ablation-defaults-seed3": entry("e" * 40, 3, 0.8, 0.1, 0.0, 0.3)}
    shown = [{"rev": "workspace"}, {**head, "experiments": [{"name": n, "revs": [e]} for n, e in runs.items()]}]
    monkeypatch.setattr(ablation, "exp_show", lambda commits=1: shown)
    monkeypatch.setattr(ablation, "read_seconds", lambda: {"patch8-seed1": 600.0, "patch8-seed2+none_app_d": 120.0})
    main, seeds = ablation.table().split("Over seeds")
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in main.splitlines() if line.startswith("|")]
    header, body = lines[0], lines[2:]
    got = [(cells[0], cells[header.index("seed")], cells[header.index("experiment")],
            cells[header.index("minutes")]) for cells in body if cells[0] in ("defaults", "patch8")]
    assert got == [("defaults", "0", "aaaaaaa", "-"), ("defaults", "3", "eeeeeee", "-"),
                   ("patch8", "0", "bbbbbbb", "-"), ("patch8", "1", "ccccccc", "10.0"),
                   ("patch8", "2", "7777777", "-"), ("patch8", "2", "fffffff", "-"), ("patch8", "2", "0000000", "2.0")]
    summary = markdown_rows(seeds[seeds.index("|"):])
    assert set(summary) == {"defaults", "patch8"}  # patch8_gain_norm ran at one seed only
    assert summary["patch8"]["seeds"] == "0, 1, 2"
    assert summary["patch8"]["success arm latent"] == "0.40 [0.30, 0.50]"  # best of none / noisy per seed
    assert summary["patch8"]["success arm WM"] == "0.60 [0.50, 0.70]"
    assert summary["patch8"]["success arm App. D"] == "0.57 [0.40, 0.70]"
    assert summary["patch8"]["success nav latent"] == "0.17 [0.10, 0.25]"
    assert summary["patch8"]["success nav App. D"] == "0.20 [0.20, 0.20]"  # seed 2's alone
    assert summary["defaults"]["success arm WM"] == "0.70 [0.60, 0.80]"
    assert summary["defaults"]["success nav App. D"] == "-"  # no App. D planner on nav in these entries


def test_the_table_over_commits_names_the_commit_an_earlier_experiment_ran_on(monkeypatch):
    def entry(rev, seed, none):
        return planning_entry(rev, seed, {"world_model": 0.6, "none": none}, {"world_model": 0.4, "none": none / 2})

    parent = "9" * 40
    shown = [{"rev": "workspace"},
             {**entry("a" * 40, 0, 0.1), "experiments": [{"name": "ablation-patch8-seed1",
                                                          "revs": [entry("b" * 40, 1, 0.5)]}]},
             {"rev": parent, "experiments": [
                 {"name": "ablation-patch8-seed2", "revs": [entry("c" * 40, 2, 0.3)]},
                 {"name": "ablation-patch8-seed1", "revs": [entry("d" * 40, 1, 0.9)]}]}]  # the newer commit's wins
    asked = []
    monkeypatch.setattr(ablation, "exp_show", lambda commits=1: asked.append(commits) or shown)
    monkeypatch.setattr(ablation, "read_seconds", lambda: {})
    main, seeds = ablation.table(2).split("Over seeds")
    assert asked == [2]
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in main.splitlines() if line.startswith("|")]
    header, body = lines[0], lines[2:]
    got = [(cells[header.index("seed")], cells[header.index("experiment")]) for cells in body if cells[0] == "patch8"]
    assert got == [("1", "bbbbbbb"), ("2", "ccccccc on 9999999")]
    summary = markdown_rows(seeds[seeds.index("|"):])
    assert summary["patch8"]["seeds"] == "1, 2"
    assert summary["patch8"]["success arm latent"] == "0.40 [0.30, 0.50]"


def test_every_row_names_params_keys_and_changes_each_of_them():
    """A typo in a row's overrides would otherwise surface only after DVC has started the row."""
    params = load_params(PARAMS)
    before = leaves(params.model_dump(mode="json"))
    names = [row.name for row in [ablation.DEFAULTS, *ablation.ABLATIONS]]
    assert len(names) == len(set(names))
    for row in ablation.ABLATIONS:
        after = leaves(with_overrides(params, row.overrides).model_dump(mode="json"))
        assert row.overrides and row.source in ("paper", "ours") and row.why, row.name
        for key, value in leaves(row.overrides).items():  # a key of params.yaml, or one filling an empty mapping
            known = key in before or before.get(key.rpartition(".")[0]) == {}
            assert known and after[key] == value != before.get(key), (row.name, key)
