"""The ablation table: one DVC experiment per row of ABLATIONS, their metrics side by side.

    python -m pipelines.ablation run [NAME ...]             # run the named rows (default: those not run yet)
    python -m pipelines.ablation table [--out FILE]         # print the Markdown table; with --out, put it
                                                            #   between <!-- ablation:start --> and
                                                            #   <!-- ablation:end --> in FILE

Each row is a full `dvc exp run --name ablation-<name> -S key=value ...` in the workspace: DVC reruns
the whole DAG from the first stage its overrides change, and the experiment is committed under
the current HEAD (`dvc exp show` lists the experiments of HEAD only, so a new commit starts a new
table). params.yaml is put back to its text before every row and at the end, so overrides never
stack. The wall-clock seconds of each row go to data/ablation/seconds.json.

The metric files are in git (`data/.gitignore` lets data/metrics through), so each experiment's
commit holds them and `dvc exp show` reads them.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lawm.io import atomic_path
from pipelines.layout import DATA, METRICS

ABLATION = DATA / "ablation"
SECONDS = ABLATION / "seconds.json"
PARAMS = Path("params.yaml")
START, END = "<!-- ablation:start -->", "<!-- ablation:end -->"
NOT_LATENT = ("world_model", "random", "oracle")  # planners that are not a latent-action model


@dataclass(frozen=True)
class Ablation:
    """One row: params overrides (dotted keys of params.yaml), whose change it is, and why."""
    name: str
    overrides: dict[str, object]
    source: str  # "paper" or "ours"
    why: str


DEFAULTS = Ablation("defaults", {}, "-", "params.yaml as committed, with the metrics committed beside it")
ABLATIONS = [
    Ablation("no_blur", {"features.encoder.blur": 0.0}, "ours", "states without the 2 px blur"),
    Ablation("idm_coarse", {"latent_actions.model.idm_split": 1}, "ours",
             "the IDM on the cached 16 px tokens instead of 8 px ones"),
    Ablation("idm_depth2", {"latent_actions.model.idm_depth": 2}, "ours", "a 2-block IDM (1.6x the training time)"),
    Ablation("patch8", {"features.encoder.patch_size": 8, "latent_actions.model.idm_split": 1}, "ours",
             "8 px patches everywhere (4x the tokens)"),
]


def experiment_name(row: Ablation) -> str:
    return f"ablation-{row.name}"


def dvc(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """`python -m dvc ...` with this interpreter; output streams to the terminal unless captured."""
    return subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=capture, text=True)


def exp_show() -> list[dict]:
    """`dvc exp show --json`: the workspace, then HEAD, each `{"rev", "name", "data", "error",
    "experiments"}`; HEAD's `experiments` is a list of `{"name", "executor", "revs": [entry]}`,
    an entry's `data` holding its params and metrics."""
    proc = dvc("exp", "show", "--json", capture=True)
    if proc.returncode != 0:
        sys.exit(f"dvc exp show failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def experiments(shown: list[dict]) -> dict[str, dict]:
    """Experiment name -> its entry."""
    return {entry.get("name") or exp.get("name"): entry for baseline in shown
            for exp in baseline.get("experiments") or [] for entry in exp.get("revs") or []}


def committed(shown: list[dict]) -> dict | None:
    """HEAD's entry: the metrics committed with the default params."""
    return next((b for b in shown if b.get("rev") != "workspace"), None)


def select(names: list[str]) -> list[Ablation]:
    """The rows of ABLATIONS with these names, in the order given; unknown names stop here."""
    rows = {row.name: row for row in ABLATIONS}
    unknown = [n for n in names if n not in rows]
    if unknown:
        sys.exit(f"unknown ablation(s) {', '.join(unknown)}; the rows are: {', '.join(rows)}")
    return [rows[n] for n in names]


def set_args(overrides: dict[str, object]) -> list[str]:
    """`-S key=value` for each override, the value as JSON (which DVC parses as YAML)."""
    return [arg for key, value in overrides.items() for arg in ("-S", f"{key}={json.dumps(value)}")]


def save_seconds(name: str, seconds: float) -> None:
    """Add a row's wall-clock seconds to data/ablation/seconds.json."""
    table = read_seconds()
    table[name] = round(seconds, 1)
    with atomic_path(SECONDS) as tmp:
        tmp.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


def read_seconds() -> dict[str, float]:
    return json.loads(SECONDS.read_text()) if SECONDS.is_file() else {}


def run_row(row: Ablation, params_bytes: bytes, existing: dict[str, dict]) -> float:
    """Run one row as a DVC experiment from the original params.yaml; returns its seconds."""
    name = experiment_name(row)
    PARAMS.write_bytes(params_bytes)
    if name in existing:
        print(f"ablation {row.name}: replacing the experiment {name}", flush=True)
        if dvc("exp", "remove", name).returncode != 0:
            sys.exit(f"ablation {row.name}: `dvc exp remove {name}` failed")
    start = time.perf_counter()
    proc = dvc("exp", "run", "--name", name, *set_args(row.overrides))
    seconds = time.perf_counter() - start
    if proc.returncode != 0:  # run() puts params.yaml back on the way out
        sys.exit(f"ablation {row.name}: `dvc exp run` failed (exit {proc.returncode}) after {seconds:.0f} s")
    return seconds


def run(names: list[str]) -> None:
    """Run the named rows, or every row without an experiment yet; params.yaml is restored after."""
    existing = experiments(exp_show())
    rows = select(names) if names else [r for r in ABLATIONS if experiment_name(r) not in existing]
    if not rows:
        print("every ablation has an experiment; name rows to run them again")
        return
    params_bytes = PARAMS.read_bytes()
    try:
        for row in rows:
            seconds = run_row(row, params_bytes, existing)
            save_seconds(row.name, seconds)
            print(f"ablation {row.name}: {seconds / 60:.1f} min", flush=True)
    finally:
        PARAMS.write_bytes(params_bytes)


def metrics_of(entry: dict) -> dict[str, dict]:
    """Metrics file -> values of one experiment (files DVC could not read are left out)."""
    files = (entry.get("data") or {}).get("metrics") or {}
    return {path: value["data"] for path, value in files.items() if "data" in value}


def value(tree, *keys) -> float | None:
    """A number inside nested dicts, or None when a key is missing or the value is null or NaN."""
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return None if not isinstance(tree, (int, float)) or math.isnan(tree) else float(tree)


def best(values: dict[str, float | None], lowest: bool) -> tuple[str, float] | None:
    """(label, value) of the lowest or highest value that exists."""
    present = {k: v for k, v in values.items() if v is not None}
    if not present:
        return None
    pick = min if lowest else max
    label = pick(present, key=present.get)
    return label, present[label]


def labelled(found: tuple[str, float] | None, fmt: str = ".2f") -> str:
    return "-" if found is None else f"{found[1]:{fmt}} ({found[0]})"


def number(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else f"{x:{fmt}}"


def controller_files(metrics: dict, domain: str) -> dict[str, dict]:
    """Controller variant -> its fit_controller metrics on `domain`."""
    prefix, suffix = f"{METRICS.as_posix()}/fit_controller/", f"/{domain}.json"
    return {p[len(prefix):-len(suffix)]: m for p, m in metrics.items() if p.startswith(prefix) and p.endswith(suffix)}


def controller_cell(metrics: dict, domain: str, key: str, lowest: bool) -> str:
    """The best value of a fit_controller metric on `domain` over the variants, with its variant."""
    files = controller_files(metrics, domain)
    return labelled(best({v: value(m, key) for v, m in files.items()}, lowest))


def world_model_cell(metrics: dict, domain: str) -> dict[str, str]:
    """The real-action world model's held-out one-step L1 over the L1 of copying the last state."""
    m = metrics.get(f"{METRICS.as_posix()}/train_world_model/{domain}.json", {})
    one_step, copy = value(m, "val_one_step_l1"), value(m, "val_copy_last_l1")
    return {f"WM/copy {domain}": number(None if one_step is None or not copy else one_step / copy)}


def offline_cells(planning: dict, domain: str, key: str, label: str) -> dict[str, str]:
    """An offline planning error (lower is better): the best latent planner and the world model."""
    planners = planning.get(domain, {}).get("offline", {})
    latent = {p: value(m, key) for p, m in planners.items() if p not in NOT_LATENT}
    return {f"{label} latent": labelled(best(latent, lowest=True), ".3g"),
            f"{label} WM": number(value(planners, "world_model", key), ".3g")}


def success(m: dict | None) -> str:
    """`0.45 [0.36, 0.55]`: closed-loop success with its Wilson interval."""
    rate, lo, hi = (value(m, k) for k in ("success", "success_lo", "success_hi"))
    if rate is None:
        return "-"
    return f"{rate:.2f}" if lo is None or hi is None else f"{rate:.2f} [{lo:.2f}, {hi:.2f}]"


def closed_loop_cells(planning: dict, domain: str) -> dict[str, str]:
    """Closed-loop success: the best latent planner, the world model and random actions."""
    planners = planning.get(domain, {}).get("closed_loop", {})
    found = best({p: value(m, "success") for p, m in planners.items() if p not in NOT_LATENT}, lowest=False)
    latent = "-" if found is None else f"{success(planners[found[0]])} ({found[0]})"
    return {f"success {domain} latent": latent, f"success {domain} WM": success(planners.get("world_model")),
            f"success {domain} random": success(planners.get("random"))}


def metric_cells(metrics: dict) -> dict[str, str]:
    """Every metric column of one experiment."""
    planning = metrics.get(f"{METRICS.as_posix()}/evaluate_planning.json", {})
    domains = ("arm", "nav")
    cells = {f"z→a R² {d}": controller_cell(metrics, d, "idm_action_r2", lowest=False) for d in domains}
    for domain in domains:
        cells |= world_model_cell(metrics, domain)
    cells |= {f"ctrl ratio {d}": controller_cell(metrics, d, "controller_ratio", lowest=True) for d in domains}
    cells |= offline_cells(planning, "arm", "delta", "DROID Δ") | offline_cells(planning, "nav", "rpe", "RECON RPE")
    for domain in domains:
        cells |= closed_loop_cells(planning, domain)
    return cells


def table_row(row: Ablation, entry: dict | None, seconds: float | None) -> dict[str, str]:
    """One row of the table: the ablation, its experiment (or "not run"), its metrics, its minutes."""
    head = {"ablation": row.name, "source": row.source, "what": row.why,
            "experiment": entry["rev"][:7] if entry else "not run"}
    cells = metric_cells(metrics_of(entry) if entry else {})
    return head | cells | {"minutes": number(None if seconds is None else seconds / 60, ".1f")}


def table() -> str:
    """The Markdown table: the committed defaults, then every row of ABLATIONS."""
    shown, seconds = exp_show(), read_seconds()
    found = experiments(shown)
    rows = [table_row(DEFAULTS, committed(shown), None)]
    rows += [table_row(r, found.get(experiment_name(r)), seconds.get(r.name)) for r in ABLATIONS]
    return pd.DataFrame(rows).to_markdown(index=False)


def insert_table(path: Path, markdown: str) -> None:
    """Replace what lies between the ablation markers in `path` with `markdown`."""
    text = path.read_text()
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        sys.exit(f"{path} has no `{START}` ... `{END}` pair: add the two markers where the table goes")
    with atomic_path(path) as tmp:
        tmp.write_text(text[:start + len(START)] + "\n" + markdown + "\n" + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="run rows as DVC experiments")
    run_cmd.add_argument("names", nargs="*", help=f"rows to run (default: those not run yet): "
                                                  f"{', '.join(r.name for r in ABLATIONS)}")
    table_cmd = commands.add_parser("table", help="print the Markdown table")
    table_cmd.add_argument("--out", type=Path, help="also write it between the ablation markers in this file")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.names)
        return 0
    markdown = table()
    print(markdown)
    if args.out:
        insert_table(args.out, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
