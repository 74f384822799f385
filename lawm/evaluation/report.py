"""The study's Markdown report: our measurements beside the paper's tables, with the figures."""

from __future__ import annotations

import shutil
from pathlib import Path

from lawm.evaluation import paper
from lawm.io import atomic_path
from lawm.planning.domains import labelled

SUMMARY = "## Summary: latent actions against real actions"  # the heading `summary_of` looks for


def _table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])


def _figure(src: Path, out: Path, name: str, caption: str) -> str:
    if not src.is_file():
        return f"*({caption}: figure not produced)*"
    (out / "figures").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out / "figures" / name)
    return f"![{caption}](figures/{name})"


BASELINES = ("world_model", "random", "oracle")
# An offline protocol's headline metric (lower is better) and its name, {} for the domain.
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
            latent = {n: values[n] for n in names if n in values and n not in BASELINES}
            if not latent:
                continue
            best = (min if lower_better else max)(latent, key=latent.get)
            wm = values["world_model"]
            ratio = f" (x{latent[best] / wm:.2f})" if wm else ""
            lines.append(f"- {label} ({'lower' if lower_better else 'higher'} is better), {group}: best "
                         f"latent-action planner `{best}` {latent[best]:.3g} against the real-action world model "
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
    kinds = {v: params.regularizer(v).kind for v in m["latent"]}
    enc = params.features.encoder
    s = ["# lawm report", "",
         f"Encoder `{enc.kind}` ({enc.image_size} px), latent-action models trained on "
         f"{', '.join(params.latent_actions.domains)} (domain share {params.latent_actions.domain_share}; "
         f"per variant: {_shares(params.latent_actions.variant_domain_share)}), "
         f"{params.latent_actions.train.steps} steps each; model dim {params.latent_actions.model.dim}, depth "
         f"{params.latent_actions.model.depth}, latent {params.latent_actions.model.latent_dim}. Errors are L1 in "
         "representation space on held-out clips. The paper's numbers are LPIPS, metres and RECON units on real "
         "data at scale: compare ratios and orderings, not values.", ""]

    s += [SUMMARY, "",
          *_summary(m["planning"], domains, planner_groups(params)), ""]

    s += ["## Capacity (paper Fig. 4)", "",
          _table(["variant", "regulariser", "one-step L1", "position (none = 0, zero = 1)"],
                 [[v, kinds[v], x["capacity_one_step_l1"], m["capacity"].get(f"{v}_capacity_position")]
                  for v, x in sorted(m["latent"].items(), key=lambda kv: kv[1]["capacity_one_step_l1"])]), "",
          _figure(figures.get("capacity", Path()), out, "capacity.png", "capacity"), ""]

    s += ["## Future leakage at scene cuts (paper Table 1) and transfer (Table 2)", "",
          _table(["variant", "L1 w/o cut", "L1 at cut", "ratio", "paper ratio", "transfer original", "transfer",
                  "ratio", "paper ratio"],
                 [[v, x["leakage_error_no_cut"], x["leakage_error_cut"], f"x{x['leakage_ratio']:.2f}",
                   paper.paper_range(paper.TABLE1_CUT_RATIO, kinds[v]), x["transfer_original_l1"], x["transfer_l1"],
                   f"x{x['transfer_ratio']:.2f}", paper.paper_range(paper.TABLE2_TRANSFER_RATIO, kinds[v])]
                  for v, x in m["latent"].items()]), "",
          "What the latents carry (held-out linear-probe R^2 on the training domains' ground truth, and from z "
          "to the real action of each labelled domain; the paper cannot measure this), and whether the predictor "
          "uses them there (z use: one-step L1 with the latents of a clip from another video over the L1 with the clip's own; "
          "1 = ignored):", "",
          _table(["variant", "flicker", "camera", "agents", "locality", *(f"{d} action" for d in domains),
                  *(f"{d} z use" for d in domains)],
                 [[v, x.get("probe_r2_flicker"), x.get("probe_r2_camera"), x.get("probe_r2_agents"),
                   x.get("locality_concentration"), *(x.get(f"action_r2_{d}") for d in domains),
                   *(x.get(f"latent_use_{d}") for d in domains)]
                  for v, x in m["latent"].items()]), "",
          _figure(figures.get("transfer", Path()), out, "transfer.png", "transfer"), ""]
    for d in params.latent_actions.eval_real_domains:
        s += [f"The same on every `{d}` clip (real footage the models never trained on; no ground truth, so no "
              "probes):", "",
              _table(["variant", "one-step L1", "leakage ratio", "transfer ratio"],
                     [[v, x.get(f"{d}_capacity_one_step_l1"), x.get(f"{d}_leakage_ratio"),
                       x.get(f"{d}_transfer_ratio")] for v, x in m["latent"].items()]), ""]

    s += ["## Controllers: rollouts driven by real actions (paper Tables S1/S2, left)", "",
          "Open-loop rollout L1 over whole held-out clips: with the IDM's latents (the upper bound), through the "
          "controller (seeing its own predicted states), and through the action-only MLP ablation. The real-action "
          "world model is the baseline. z -> action R^2: how much of the real action the IDM's latents carry "
          "(held-out linear probe); near 0, a controller can only output the latents' mean, and planning "
          "through it cannot steer.", "",
          _table(["variant", "domain", "z -> action R^2", "IDM", "controller", "ratio", "paper ratio", "action-only",
                  "ratio"],
                 [[v, d, x["idm_action_r2"], x["idm_rollout_l1"], x["controller_rollout_l1"], f"x{x['controller_ratio']:.2f}",
                   _paper_controller_ratio(kinds[v], d),
                   x["action_only_controller_rollout_l1"], f"x{x['action_only_controller_ratio']:.2f}"]
                  for (v, d), x in m["controller"].items()]
                 + [["real-action world model", d, None, None, x["val_rollout_l1"], None, None, None, None]
                    for d, x in m["world_model"].items()]), ""]

    plan = m["planning"]
    cfg = params.planning
    for d in domains:
        if d in plan:
            s += _offline_section(d, plan[d]["offline"], getattr(cfg, labelled(d).budget))
    looped = [d for d in domains if "closed_loop" in plan.get(d, {})]
    cl = cfg.closed_loop
    if looped:
        s += ["## Closed-loop control in the simulators (not in the paper)", "",
              f"{cl.episodes} fresh scenes per domain; the goal is an observation {cl.goal_steps} exploratory "
              f"transitions away; the planner acts for {cl.steps} transitions (CEM {cl.cem.samples} x "
              f"{cl.cem.iterations}, horizon {cl.cem.horizon}, replanning every transition) and never sees a pose. "
              f"Success: final position within {cl.success_radius} of the goal's (nav: and heading within "
              f"{cl.success_yaw} rad). 95% Wilson intervals.", ""]
    for d in looped:
        rows = [[n, x["success"], f"[{x['success_lo']:.2f}, {x['success_hi']:.2f}]", x["start_distance"],
                 x["final_distance"]] for n, x in plan[d]["closed_loop"].items()]
        s += [f"**{d}**", "", _table(["planner", "success", "95% CI", "start distance", "final distance"], rows), ""]
        s += [_figure(figures.get(f"plan_{d}_{n}", Path()), out, f"plan_{d}_{n}.png",
                      f"{d}, {n}: executed (top, then the goal) and first plan's prediction (bottom)")
              for n in plan[d]["closed_loop"] if n not in ("random", "oracle")]
        s.append("")
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(s) + "\n")
    return out / "report.md"


def _paper_controller_ratio(kind: str, domain: str) -> str:
    """The paper's controller ratios for the domain's protocol ("-" for a domain the paper has no analogue of)."""
    column = PAPER_COLUMN.get(labelled(domain).protocol)
    return "-" if column is None else paper.paper_range(paper.CONTROLLER_RATIO, kind, column)


def _offline_section(domain: str, off: dict, b) -> list[str]:
    """The offline protocol's section for `domain`: its budget `b` (a ProtocolConfig) and every planner's metrics."""
    protocol = labelled(domain).protocol
    if protocol == "droid":
        return [f"## Planning, {domain} (DROID protocol, paper Table S1-right)", "",
                f"CEM {b.samples} samples, {b.elites} elites, {b.iterations} iterations, horizon "
                f"{b.horizon}, {b.episodes} held-out start/goal pairs (paper: 300 / 10 / 15, H = 3, 64). "
                "Δ = |sum planned - sum true|_1 in frame fractions; relative = Δ / |sum true|_1.", "",
                _table(["planner", "Δ", "± s.e.", "relative"],
                       [[n, x["delta"], x["delta_sem"], x["delta_relative"]] for n, x in off.items()]), "",
                "Paper: " + "; ".join(f"{k}: {v}" for k, v in paper.DROID_DELTA.items()) + ".", ""]
    if protocol == "recon":
        return [f"## Planning, {domain} (RECON protocol, paper Table S2-right)", "",
                f"{b.samples} straight-line candidates, {b.iterations} iteration, horizon {b.horizon} "
                f"states, {b.episodes} held-out segments. ATE and RPE in view sides.", "",
                _table(["planner", "ATE", "RPE"], [[n, x["ate"], x["rpe"]] for n, x in off.items()]), "",
                "Paper (ATE | RPE): " + "; ".join(f"{k}: {v}" for k, v in paper.RECON_ATE_RPE.items()) + ".", ""]
    return [f"## Planning, {domain} (generic protocol, not in the paper)", "",
            f"CEM {b.samples} samples, {b.elites} elites, {b.iterations} iterations, horizon {b.horizon}, "
            f"{b.episodes} held-out start/goal pairs. Action L1 = mean per-step |planned - true|_1 in the ground "
            "truth's units; relative = over the mean per-step |true|_1.", "",
            _table(["planner", "action L1", "± s.e.", "relative"],
                   [[n, x["action_l1"], x["action_l1_sem"], x["action_l1_relative"]] for n, x in off.items()]), ""]


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
