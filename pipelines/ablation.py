"""The ablation table: one DVC experiment per row of `pipelines.ablation_rows`, their metrics side by side.

    python -m pipelines.ablation run [NAME ...] [--seeds K ...] [--variants V ...]
                                                            # run the named rows (default: those not run
                                                            #   yet), at each seed (default: params.yaml's),
                                                            #   with these latent-action variants (default: all)
    python -m pipelines.ablation table [--out FILE] [--commits N]
                                                            # print the Markdown table; with --out, put it
                                                            #   between <!-- ablation:start --> and
                                                            #   <!-- ablation:end --> in FILE; with
                                                            #   --commits, of HEAD's last N commits

Each row is one `dvc exp run --name ablation-<name> -S key=value ...` in the workspace, started from
the committed defaults: before every row (and at the end) params.yaml, the lock files
(`pipelines.layout.LOCK_FILES`) and data/metrics go back to HEAD's and `dvc checkout` puts the
defaults' outputs back, so DVC reruns only the stages the row's overrides change, rows do not
stack, and the minutes are the row's own. That needs the defaults' run committed (`dvc repro`, then
commit the lock files and data/metrics), which `run` checks.
The experiments are kept under HEAD (`dvc exp show` lists HEAD's only, so a new commit starts a new
table; `table --commits N` also reads those run on HEAD's N-1 first parents, each line naming the
commit it ran on, for a row whose seeds ran across commits); the wall-clock seconds of each row go
to data/ablation/seconds.json. Stages run against one Prefect server (`pipelines.prefect_server`),
as in `make repro`.

`--seeds` runs each row at other seeds too (`-S seed=K`: other worlds, other initial weights, other
planning scenes), as experiments `ablation-<name>-seed<K>`; `defaults` then names the committed
params at another seed. The table gets one line per seed run, and a second table gives, for every
row run at two seeds or more, each closed-loop success as its mean and range over the seeds: one
seed's 100 episodes do not resolve a change smaller than about 0.15 (docs/findings.md).

`--variants` trains only the named latent-action variants (and fits controllers for those of them the
committed `controller.variants` has), e.g. `--variants none zero none_app_d` for the main setting, its
lower bound and App. D at about half the time of all eight, as experiments named with the variants
(`ablation-<name>[-seed<K>]+none+zero+none_app_d`), so a row run with other variants keeps its earlier
runs; the table's `variants` column says which an experiment trained, and the seeds table takes each
seed's best over its runs.

The latent-action columns take the best variant trained in the paper's main setting (no windows
from the labelled domains); the App. D columns the best variant trained with them. The metric
files are in git (`data/.gitignore` lets data/metrics through), so each experiment's commit holds
them and `dvc exp show` reads them.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from lawm.evaluation.targets import BASELINES, best_planner
from lawm.io import atomic_path, write_json
from pipelines.ablation_rows import ABLATIONS, DEFAULTS, Ablation
from pipelines.experiments import set_param_args
from pipelines.layout import ABLATION, LOCK_FILES, METRICS, PARAMS

SECONDS = ABLATION / "seconds.json"
Keep = Callable[[str], bool]  # which variants a column takes
START, END = "<!-- ablation:start -->", "<!-- ablation:end -->"
DEFAULTS_STATE = [PARAMS.as_posix(), *(f.as_posix() for f in LOCK_FILES), METRICS.as_posix()]  # a row changes these


def label(row: Ablation, seed: int | None = None, variants: list[str] | None = None) -> str:
    """The row's name, with `-seed<K>` when it runs at a seed other than the committed one (None) and
    `+<variant>...` when it trains only some latent-action variants (None: all)."""
    return row.name + ("" if seed is None else f"-seed{seed}") + "".join(f"+{v}" for v in variants or [])


PREFIX = "ablation-"  # of every experiment name
NEW, OLD = "-new", "-old"  # suffixes of an experiment while it replaces another, or is replaced


def experiment_name(row: Ablation, seed: int | None = None, variants: list[str] | None = None) -> str:
    return f"{PREFIX}{label(row, seed, variants)}"


def dvc(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """`python -m dvc ...` with this interpreter; output streams to the terminal unless captured."""
    return subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=capture, text=True)


def git(*args: str) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"git {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def check_defaults_committed() -> None:
    """Stop unless params.yaml, the lock files and data/metrics are as HEAD has them, with metrics in it."""
    if git("status", "--porcelain", "--", *DEFAULTS_STATE).strip():
        sys.exit(f"{', '.join(DEFAULTS_STATE)} differ from HEAD: commit the defaults' run (or restore it with "
                 "`git checkout HEAD -- ...`) before running ablations, which start from HEAD")
    if not git("ls-tree", "HEAD", "--", f"{METRICS.as_posix()}/").strip():
        sys.exit("HEAD has no data/metrics: run `dvc repro` and commit the lock files and data/metrics first")


def restore_defaults() -> None:
    """params.yaml, the lock files and data/metrics as HEAD has them, and the outputs the locks name."""
    git("checkout", "HEAD", "--", *DEFAULTS_STATE)
    git("clean", "-fdq", "--", f"{METRICS.as_posix()}/")  # metric files of a row's extra stages
    if dvc("checkout", "--force", capture=True).returncode != 0:
        sys.exit("`dvc checkout --force` could not put the defaults' outputs back (are they in the DVC cache?)")


def exp_show(commits: int = 1) -> list[dict]:
    """`dvc exp show --json -n commits`: the workspace, then HEAD and its first parents, newest first,
    each `{"rev", "name", "data", "error", "experiments"}`; a commit's `experiments` is a list of
    `{"name", "executor", "revs": [entry]}`, an entry's `data` holding its params and metrics."""
    proc = dvc("exp", "show", "--json", "-n", str(commits), capture=True)
    if proc.returncode != 0:
        sys.exit(f"dvc exp show failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def experiments(shown: list[dict]) -> dict[str, dict]:
    """Experiment name -> its entry, with the commit it ran on under `base`; a name run on two commits
    is the newer commit's."""
    found: dict[str, dict] = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for entry in exp.get("revs") or []:
                found.setdefault(entry.get("name") or exp.get("name"), {**entry, "base": baseline.get("rev")})
    return found


def committed(shown: list[dict]) -> dict | None:
    """HEAD's entry: the metrics committed with the default params."""
    return next((b for b in shown if b.get("rev") != "workspace"), None)


def select(names: list[str]) -> list[Ablation]:
    """The rows with these names (ABLATIONS' and `defaults`), in the order given; unknown names stop here."""
    rows = {row.name: row for row in [DEFAULTS, *ABLATIONS]}
    unknown = [n for n in names if n not in rows]
    if unknown:
        sys.exit(f"unknown ablation(s) {', '.join(unknown)}; the rows are: {', '.join(rows)}")
    return [rows[n] for n in dict.fromkeys(names)]  # each row once


def save_seconds(name: str, seconds: float) -> None:
    """Add a row's wall-clock seconds to data/ablation/seconds.json."""
    write_json(SECONDS, {**read_seconds(), name: round(seconds, 1)})


def read_seconds() -> dict[str, float]:
    return json.loads(SECONDS.read_text()) if SECONDS.is_file() else {}


def trials(rows: list[Ablation], seeds: list[int], committed: int) -> list[tuple[Ablation, int | None]]:
    """(row, seed) for each row at each seed, None for the committed seed; the defaults at the committed
    seed are left out (their metrics are the committed ones)."""
    return [(row, None if seed == committed else seed) for row in rows for seed in dict.fromkeys(seeds)
            if not (row is DEFAULTS and seed == committed)]


def only_variants(chosen: list[str] | None, params: dict) -> list[str] | None:
    """The `chosen` latent-action variants in the order `params` (HEAD's) trains them; None when none
    are chosen or they are all of them; unknown names stop here."""
    if not chosen:
        return None
    trained = params["latent_actions"]["variants"]
    unknown = [v for v in chosen if v not in trained]
    if unknown:
        sys.exit(f"unknown latent-action variant(s) {', '.join(unknown)}; params.yaml's are: {', '.join(trained)}")
    only = [v for v in trained if v in chosen]
    return None if only == trained else only


def variant_overrides(only: list[str] | None, params: dict) -> dict[str, list[str]]:
    """The overrides that train `only` these latent-action variants (None: all) and fit controllers for
    those of them `params` fits."""
    if only is None:
        return {}
    return {"latent_actions.variants": only, "controller.variants": [v for v in params["controller"]["variants"]
                                                                     if v in only]}


def run_row(row: Ablation, seed: int | None = None, only: list[str] | None = None, head: dict | None = None
            ) -> float:
    """Run one row (at `seed`, None: the committed one; training `only` these latent-action variants,
    None: all) as a DVC experiment from the committed defaults; returns its seconds. A row that already
    has an experiment at that seed with those variants is run under a new name and replaces it only
    when it succeeds; its runs with other variants stay. `head`: HEAD's params (needed with `only`)."""
    name, what = experiment_name(row, seed, only), label(row, seed, only)
    overrides = {**row.overrides, **variant_overrides(only, head), **({} if seed is None else {"seed": seed})}
    existing = experiments(exp_show())
    trial = f"{name}{NEW}" if name in existing else name
    if trial in existing:  # left by an earlier replacement that failed half-way
        dvc("exp", "remove", trial)
    restore_defaults()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipelines.prefect_server", sys.executable, "-m", "dvc", "exp",
                           "run", "--name", trial, *set_param_args(overrides)])
    seconds = time.perf_counter() - start
    if proc.returncode != 0:  # run() puts the defaults back on the way out
        sys.exit(f"ablation {what}: `dvc exp run` failed (exit {proc.returncode}) after {seconds:.0f} s")
    if trial != name:  # the old experiment goes only once the new one holds its name
        for args in (("rename", name, f"{name}{OLD}"), ("rename", trial, name), ("remove", f"{name}{OLD}")):
            if dvc("exp", *args).returncode != 0:
                sys.exit(f"ablation {what}: `dvc exp {' '.join(args)}` failed")
    return seconds


def run(names: list[str], seeds: list[int] | None = None, variants: list[str] | None = None) -> None:
    """Run the named rows, or every row without an experiment yet, at each seed (default: the
    committed one), training the given latent-action variants (default: all); the defaults are put
    back after."""
    check_defaults_committed()
    shown = exp_show()
    existing, head = experiments(shown), params_of(committed(shown))
    head_seed, only = head["seed"], only_variants(variants, head)
    todo = trials(select(names) if names else [DEFAULTS, *ABLATIONS], seeds or [head_seed], head_seed)
    if not names:
        todo = [(row, seed) for row, seed in todo if experiment_name(row, seed, only) not in existing]
    if not todo:
        print("nothing to run: every row has an experiment at these seeds (name rows to run them again), "
              "and the defaults at the committed seed are the committed metrics")
        return
    try:
        for row, seed in todo:
            seconds = run_row(row, seed, only, head)
            save_seconds(label(row, seed, only), seconds)
            print(f"ablation {label(row, seed, only)}: {seconds / 60:.1f} min", flush=True)
    finally:
        restore_defaults()


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


def value_and_variant(found: tuple[str, float] | None, fmt: str = ".2f") -> str:
    """"0.25 (none)": a best value and the variant that has it; "-" when none has it."""
    return "-" if found is None else f"{found[1]:{fmt}} ({found[0]})"


def number(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else f"{x:{fmt}}"


def controller_files(metrics: dict, domain: str) -> dict[str, dict]:
    """Controller variant -> its fit_controller metrics on `domain`."""
    prefix, suffix = f"{METRICS.as_posix()}/fit_controller/", f"/{domain}.json"
    return {p[len(prefix):-len(suffix)]: m for p, m in metrics.items() if p.startswith(prefix) and p.endswith(suffix)}


def controller_cell(metrics: dict, domain: str, key: str, lowest: bool, keep: Keep) -> str:
    """The best value of a fit_controller metric on `domain` over the kept variants, with its variant."""
    files = controller_files(metrics, domain)
    return value_and_variant(best({v: value(m, key) for v, m in files.items() if keep(v)}, lowest))


def world_model_cell(metrics: dict, domain: str) -> dict[str, str]:
    """The real-action world model's held-out one-step L1 over the L1 of copying the last state."""
    m = metrics.get(f"{METRICS.as_posix()}/train_world_model/{domain}.json", {})
    one_step, copy = value(m, "val_one_step_l1"), value(m, "val_copy_last_l1")
    return {f"WM/copy {domain}": number(None if one_step is None or not copy else one_step / copy)}


def latent_planners(planners: dict, keep: Keep) -> dict[str, dict]:
    return {p: m for p, m in planners.items() if p not in BASELINES and keep(p)}


def offline_cells(planning: dict, domain: str, key: str, label: str, keep: Keep) -> dict[str, str]:
    """An offline planning error (lower is better): the best kept latent planner and the world model."""
    planners = planning.get(domain, {}).get("offline", {})
    latent = {p: value(m, key) for p, m in latent_planners(planners, keep).items()}
    return {f"{label} latent": value_and_variant(best(latent, lowest=True), ".3g"),
            f"{label} WM": number(value(planners, "world_model", key), ".3g")}


def success(m: dict | None) -> str:
    """`0.45 [0.36, 0.55]`: closed-loop success with its Wilson interval."""
    rate, lo, hi = (value(m, k) for k in ("success", "success_lo", "success_hi"))
    if rate is None:
        return "-"
    return f"{rate:.2f}" if lo is None or hi is None else f"{rate:.2f} [{lo:.2f}, {hi:.2f}]"


def best_latent(planners: dict, keep: Keep) -> str | None:
    """The kept latent planner with the highest closed-loop success."""
    return best_planner(planners, [p for p in planners if keep(p)], "success", lower_better=False)


def best_success(planners: dict, keep: Keep) -> str:
    """Closed-loop success of the best kept latent planner, with its name."""
    name = best_latent(planners, keep)
    return "-" if name is None else f"{success(planners[name])} ({name})"


def params_of(entry: dict | None) -> dict:
    """The params.yaml an experiment ran with."""
    return (((entry or {}).get("data") or {}).get("params") or {}).get("params.yaml", {}).get("data", {})


def app_d(entry: dict) -> Keep:
    """Whether a variant of this experiment trained with windows of the labelled domains (App. D)."""
    cfg = params_of(entry).get("latent_actions", {})
    default, own = cfg.get("domain_share", 0.0), cfg.get("variant_domain_share") or {}
    return lambda variant: own.get(variant, default) > 0


def planning_of(metrics: dict) -> dict:
    """An experiment's evaluate_planning.json."""
    return metrics.get(f"{METRICS.as_posix()}/evaluate_planning.json", {})


def closed_loop(planning: dict, domain: str) -> dict[str, dict]:
    """Planner -> its closed-loop metrics on `domain`."""
    return planning.get(domain, {}).get("closed_loop", {})


def metric_cells(metrics: dict, in_app_d: Keep) -> dict[str, str]:
    """Every metric column of one experiment: latent-action columns for the paper's main setting,
    then the App. D variants' R^2 and success."""
    planning = planning_of(metrics)
    domains = ("arm", "nav")

    def main_setting(variant: str) -> bool:
        return not in_app_d(variant)

    cells = {f"z→a R² {d}": controller_cell(metrics, d, "idm_action_r2", False, main_setting) for d in domains}
    for domain in domains:
        cells |= world_model_cell(metrics, domain)
    cells |= {f"ctrl ratio {d}": controller_cell(metrics, d, "controller_ratio", True, main_setting) for d in domains}
    cells |= offline_cells(planning, "arm", "delta", "DROID Δ", main_setting)
    cells |= offline_cells(planning, "nav", "rpe", "RECON RPE", main_setting)
    for domain in domains:
        planners = closed_loop(planning, domain)
        cells |= {f"success {domain} latent": best_success(planners, main_setting),
                  f"success {domain} WM": success(planners.get("world_model")),
                  f"success {domain} random": success(planners.get("random"))}
    cells |= {f"z→a R² {d} App. D": controller_cell(metrics, d, "idm_action_r2", False, in_app_d) for d in domains}
    cells |= {f"success {d} App. D": best_success(closed_loop(planning, d), in_app_d) for d in domains}
    return cells


def success_rates(metrics: dict, in_app_d: Keep) -> dict[str, float | None]:
    """The closed-loop successes the seeds table averages: the best latent planner of each setting
    (the same pick as the main table's) and the world model, on `arm` and `nav`."""
    rates = {}
    for domain in ("arm", "nav"):
        planners = closed_loop(planning_of(metrics), domain)
        for column, keep in ((f"success {domain} latent", lambda v: not in_app_d(v)),
                             (f"success {domain} App. D", in_app_d)):
            name = best_latent(planners, keep)
            rates[column] = None if name is None else value(planners[name], "success")
        rates[f"success {domain} WM"] = value(planners, "world_model", "success")
    return rates


def trained_variants(entry: dict | None, head: dict | None) -> str:
    """`all` when an experiment trained every latent-action variant HEAD's params name, else its list."""
    trained, every = (params_of(e).get("latent_actions", {}).get("variants") for e in (entry, head))
    return "-" if entry is None else "all" if trained == every else ", ".join(trained or [])


def experiment_cell(entry: dict | None, head_rev: str) -> str:
    """The experiment's short rev, with the commit it ran on when that is not HEAD; "not run"."""
    if entry is None:
        return "not run"
    base = entry.get("base") or head_rev
    return entry["rev"][:7] + ("" if base == head_rev else f" on {base[:7]}")


def table_row(row: Ablation, entry: dict | None, seconds: float | None, seed: int | None,
              variants: str, head_rev: str = "") -> dict[str, str]:
    """One row of the table: the ablation, its seed and variants, its experiment (or "not run"; with
    the commit it ran on when that is not HEAD), its metrics, its minutes."""
    head = {"ablation": row.name, "source": row.source, "what": row.why, "seed": number(seed, "d"),
            "variants": variants, "experiment": experiment_cell(entry, head_rev)}
    cells = metric_cells(metrics_of(entry), app_d(entry)) if entry else metric_cells({}, lambda v: False)
    minutes = None if seconds is None or entry is None else seconds / 60
    return head | cells | {"minutes": number(minutes, ".1f")}


def row_runs(found: dict[str, dict], row: Ablation, committed_seed: int) -> list[tuple[int, str, dict]]:
    """(seed, label, entry) of each experiment of `row` (at any seed, with any variants; not one left
    half-way by a replacement), the committed seed first, then by seed and label."""
    pattern = re.compile(re.escape(experiment_name(row)) + r"(?:-seed(\d+))?(?:\+[\w-]+)*")
    runs = [(committed_seed if m.group(1) is None else int(m.group(1)), name.removeprefix(PREFIX), entry)
            for name, entry in found.items()
            if (m := pattern.fullmatch(name or "")) and not name.endswith((NEW, OLD))]
    return sorted(runs, key=lambda run: (run[0] != committed_seed, run[0], run[1]))


def spread(values: list[float | None]) -> str:
    """`0.30 [0.23, 0.36]`: the mean of the values that exist and their range."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    return f"{sum(present) / len(present):.2f} [{min(present):.2f}, {max(present):.2f}]"


def best_of(rates: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Per column, the highest value the runs have (one seed's runs that trained different variants)."""
    return {column: max((r[column] for r in rates if r[column] is not None), default=None) for column in rates[0]}


def seeds_row(row: Ablation, runs: dict[int, list[dict]]) -> dict[str, str]:
    """One row of the seeds table: each closed-loop success as mean [min, max] over the seeds, each
    seed's the best of its runs."""
    rates = [best_of([success_rates(metrics_of(entry), app_d(entry)) for entry in entries])
             for entries in runs.values()]
    return ({"ablation": row.name, "seeds": ", ".join(map(str, runs))}
            | {column: spread([r[column] for r in rates]) for column in rates[0]})


def table(commits: int = 1) -> str:
    """The Markdown table: the committed defaults, then every row of ABLATIONS, a line per experiment
    (per seed, and per set of variants trained) of HEAD and its `commits - 1` first parents; then,
    when some row ran at two seeds or more, the seeds table."""
    shown, seconds = exp_show(commits), read_seconds()
    found, head = experiments(shown), committed(shown)
    seed, head_rev = params_of(head).get("seed"), (head or {}).get("rev", "")
    lines, groups = [], []
    for row in [DEFAULTS, *ABLATIONS]:
        runs = row_runs(found, row, seed)
        if row is DEFAULTS:
            runs.insert(0, (seed, row.name, head))  # its minutes are the default run's, not in seconds.json
        lines += ([table_row(row, entry, None if entry is head else seconds.get(name), at,
                             trained_variants(entry, head), head_rev) for at, name, entry in runs]
                  or [table_row(row, None, None, seed, "-")])
        by_seed: dict[int, list[dict]] = {}
        for at, _, entry in runs:
            by_seed.setdefault(at, []).append(entry)
        if len(by_seed) > 1:
            groups.append(seeds_row(row, by_seed))
    markdown = pd.DataFrame(lines).to_markdown(index=False)
    if groups:
        markdown += ("\n\nOver seeds, each closed-loop success (the best variant of each seed run) as its mean "
                     "[min, max]:\n\n" + pd.DataFrame(groups).to_markdown(index=False))
    return markdown


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
                                                  f"{', '.join(r.name for r in ABLATIONS)}, or defaults "
                                                  f"(at other seeds)")
    run_cmd.add_argument("--seeds", type=int, nargs="+", metavar="K",
                         help="run each row at these seeds (default: params.yaml's seed)")
    run_cmd.add_argument("--variants", nargs="+", metavar="V",
                         help="train only these latent-action variants (default: all of params.yaml's)")
    table_cmd = commands.add_parser("table", help="print the Markdown table")
    table_cmd.add_argument("--out", type=Path, help="also write it between the ablation markers in this file")
    table_cmd.add_argument("--commits", type=int, default=1, metavar="N",
                           help="also take the experiments run on HEAD's N-1 first parents (`dvc exp show -n N`),"
                                " each line naming its commit: seeds of a row run across commits (default: 1)")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.names, args.seeds, args.variants)
        return 0
    if args.commits < 1:
        parser.error("--commits must be at least 1")
    markdown = table(args.commits)
    print(markdown)
    if args.out:
        insert_table(args.out, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
