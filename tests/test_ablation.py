"""The ablation table: a row run as a real `dvc exp run` on a copy of the project, then tabulated."""

import json
import re
import subprocess
import sys

import pytest

from pipelines import ablation
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
    params_before, lock_before = (repo / "params.yaml").read_bytes(), (repo / "dvc.lock").read_bytes()
    (repo / "params.yaml").write_bytes(params_before + b"# an uncommitted edit\n")
    refused = subprocess.run([sys.executable, "-m", "pipelines.ablation", "run", "no_blur"], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "differ from HEAD" in refused.stderr  # rows start from the committed defaults
    (repo / "params.yaml").write_bytes(params_before)

    out = run([sys.executable, "-m", "pipelines.ablation", "run", "no_blur"], repo, env)
    assert "ablation no_blur:" in out and " min" in out
    assert "Running stage 'worlds'" not in out  # from the committed defaults, only what the override changes
    assert (repo / "params.yaml").read_bytes() == params_before  # the defaults are back after the row
    assert (repo / "dvc.lock").read_bytes() == lock_before
    shown = json.loads(exp_show(repo, env))
    entries = {exp["name"]: exp["revs"][0] for entry in shown for exp in entry.get("experiments") or []}
    assert entries["ablation-no_blur"]["data"]["params"]["params.yaml"]["data"]["features"]["encoder"]["blur"] == 0
    assert "no_blur" in json.loads((repo / "data/ablation/seconds.json").read_text())

    rows = markdown_rows(run([sys.executable, "-m", "pipelines.ablation", "table"], repo, env))
    assert re.match(r"-?\d+\.\d+", rows["defaults"]["success arm WM"])  # read from the committed metrics
    assert rows["patch8"]["experiment"] == "not run"
    row = rows["no_blur"]
    assert row["experiment"] != "not run" and row["minutes"] != "-"
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
