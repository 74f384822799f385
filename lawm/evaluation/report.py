"""The study's Markdown report: our measurements beside the paper's tables, with the figures.

The text is templates/report.md.j2 (Jinja2); this module gathers what it shows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jinja2

from lawm.evaluation import paper, targets
from lawm.io import atomic_path
from lawm.planning.domains import labelled

SUMMARY = "## Summary: latent actions against real actions"  # the heading `summary_of` looks for
TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("lawm.evaluation", "templates"), trim_blocks=True,
                               lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
TEMPLATES.filters.update(cell=lambda v: f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v)),
                         fmt=format)


def _figure(src: Path, out: Path, name: str, caption: str) -> str:
    if not src.is_file():
        return f"*({caption}: figure not produced)*"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out / "figures" / name)
    return f"![{caption}](figures/{name})"


# An offline protocol's headline metric (lower is better; lawm.planning.protocols.HEADLINE, which this
# module does not import: the report stage runs without torch) and its name, {} for the domain.
HEADLINE = {"droid": ("delta", "Δ, {} (DROID protocol)"), "recon": ("rpe", "RPE, {} (RECON protocol)"),
            "generic": ("action_l1", "action L1, {} (generic protocol)")}
PAPER_COLUMN = {"droid": 0, "recon": 1}  # a protocol's column in the paper's two-domain tables


def _summary(plan: dict, domains: list[str], groups: dict[str, list[str]]) -> list[str]:
    """One line per planning measure and group of latent-action planners (e.g. by training data):
    the group's best planner against the real-action world model."""
    measures = []
    for d in domains:
        key, label = HEADLINE[labelled(d).protocol]
        measures.append((d, "offline", key, label.format(d), True))
    measures += [(d, "closed_loop", "success", f"closed-loop success, {d}", False) for d in domains]
    lines = []
    for domain, part, key, label, lower_better in measures:
        if part not in plan.get(domain, {}):
            continue
        values = {n: x[key] for n, x in plan[domain][part].items()}
        for group, names in groups.items():
            best = targets.best_planner(plan[domain][part], names, key, lower_better)
            if best is None:
                continue
            wm, x = values["world_model"], plan[domain][part][best]
            lo, hi = x.get(f"{key}_vs_world_model_lo"), x.get(f"{key}_vs_world_model_hi")
            interval = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
            ratio = f" (x{values[best] / wm:.2f}{interval})" if wm else ""
            lines.append(f"- {label} ({'lower' if lower_better else 'higher'} is better), {group}: best "
                         f"latent-action planner `{best}` {values[best]:.3g} against the real-action world model "
                         f"{wm:.3g}{ratio}; random {values['random']:.3g}, true actions {values['oracle']:.3g}.")
    return lines


def planner_groups(params) -> dict[str, list[str]]:
    """The controlled variants by training data: the paper's main setting (no labelled-domain windows)
    first, then each App. D share."""
    cfg = params.latent_actions
    groups: dict[str, list[str]] = {}
    for v in params.controller.variants:
        share = cfg.share_of(v)
        name = (f"trained on {', '.join(cfg.domains)} alone (the paper's main setting)" if share == 0 else
                f"with {share:.0%} of windows from {', '.join(cfg.mix_domains)} (App. D)")
        groups.setdefault(name, []).append(v)
    return dict(sorted(groups.items(), key=lambda kv: "App. D" in kv[0]))


def build(params, m: dict, figures: dict[str, Path], out_dir: Path) -> Path:
    """Write out_dir/report.md. `m`: {"latent": {variant: metrics}, "capacity": {...},
    "world_model": {domain: metrics}, "controller": {(variant, domain): metrics}, "planning": {...}};
    `figures`: name -> PNG path (copied next to the report)."""
    out = Path(out_dir)
    domains = list(m["world_model"])
    plan, cfg = m["planning"], params.planning
    kinds, groups = {v: params.regularizer(v).kind for v in m["latent"]}, planner_groups(params)
    text = TEMPLATES.get_template("report.md.j2").render(
        SUMMARY=SUMMARY, enc=params.features.encoder, la=params.latent_actions, cl=cfg.closed_loop, paper=paper,
        domains=domains, kinds=kinds, summary=_summary(plan, domains, groups),
        checks=targets.check_all(m, groups, kinds, domains), latent=m["latent"], capacity=m["capacity"],
        by_capacity=sorted(m["latent"].items(), key=lambda kv: kv[1]["capacity_one_step_l1"]),
        controller=m["controller"], world_model=m["world_model"], plan=plan,
        offline=[(d, labelled(d).protocol, _with_response(plan[d]), getattr(cfg, labelled(d).budget))
                 for d in domains if d in plan],
        looped=[d for d in domains if "closed_loop" in plan.get(d, {})],
        shares=_shares, paper_range=paper.paper_range, paper_controller_ratio=_paper_controller_ratio,
        figure=lambda key, name, caption: _figure(figures.get(key, Path()), out, name, caption))
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(text)
    return out / "report.md"


def _with_response(domain_plan: dict) -> dict:
    """Each planner's offline metrics with its model's action response (absent for a planner without one)."""
    response = domain_plan.get("response", {})
    return {name: {**x, **response.get(name, {})} for name, x in domain_plan["offline"].items()}


def _paper_controller_ratio(kind: str, domain: str) -> str:
    """The paper's controller ratios for the domain's protocol ("-" for a domain the paper has no analogue of)."""
    column = PAPER_COLUMN.get(labelled(domain).protocol)
    return "-" if column is None else paper.paper_range(paper.CONTROLLER_RATIO, kind, column)


def _shares(shares: dict[str, float]) -> str:
    """{"none_app_d": 0.25} -> "none_app_d 0.25"."""
    return ", ".join(f"{variant} {share:g}" for variant, share in shares.items()) or "none"


def summary_of(report: str | Path) -> str:
    """The summary section of a written report."""
    text = Path(report).read_text()
    start = text.index(SUMMARY)
    end = text.find("\n## ", start + len(SUMMARY))
    return text[start:end if end >= 0 else None].strip()


if __name__ == "__main__":  # python -m lawm.evaluation.report data/report/report.md: print its summary
    import sys

    print(summary_of(sys.argv[1]))
