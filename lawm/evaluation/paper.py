"""The paper's reported numbers (arXiv 2601.05230), printed beside ours in the report.

Keys: (latents, capacity). The paper's metrics are LPIPS on decoded frames (Tables 1, 2, S1-left,
S2-left), metres (Table S1-right) and RECON's ATE/RPE (Table S2-right); ours are in
representation space and in our worlds' units, so compare ratios and orderings, not values.
"""

TABLE1_CUT_RATIO = {  # Kinetics, LPIPS at the cut / without a cut
    ("sparse", "low"): 2.3, ("sparse", "high"): 2.4, ("noisy", "low"): 2.1, ("noisy", "high"): 2.5,
    ("discrete", "low"): 2.0, ("discrete", "high"): 2.3}

TABLE2_TRANSFER_RATIO = {  # Kinetics, LPIPS over 2 s, transfer / original
    ("sparse", "low"): 1.20, ("sparse", "high"): 1.30, ("noisy", "low"): 1.13, ("noisy", "high"): 1.34,
    ("discrete", "low"): 1.03, ("discrete", "high"): 1.07}

CONTROLLER_RATIO = {  # controller rollout LPIPS / IDM rollout LPIPS: (DROID Table S1, RECON Table S2)
    ("sparse", "low"): (1.17, 1.11), ("sparse", "mid"): (1.20, 1.16), ("sparse", "high"): (1.46, 1.51),
    ("noisy", "low"): (1.00, 0.99), ("noisy", "mid"): (1.10, 1.23), ("noisy", "high"): (1.27, 1.29),
    ("discrete", "low"): (1.00, 1.00), ("discrete", "high"): (1.02, 1.06)}

DROID_DELTA = {  # Table S1-right, Δxyz in metres (lower is better)
    "sparse low / mid / high": "0.33 / 0.18 / 0.13", "noisy low / mid / high": "0.49 / 0.11 / 0.10",
    "discrete low / high": "0.18 / 0.14", "V-JEPA 2-AC (real actions)": "0.15",
    "V-JEPA 2 + WM (upper bound)": "0.05"}

RECON_ATE_RPE = {  # Table S2-right, ATE / RPE (lower is better)
    "sparse low / mid / high": "1.68 / 1.45 / 1.43  |  0.48 / 0.41 / 0.42",
    "noisy low / mid / high": "2.06 / 1.49 / 1.40  |  0.55 / 0.41 / 0.40",
    "discrete low / high": "1.81 / 1.48  |  0.51 / 0.42", "NoMaD (policy)": "1.93  |  0.52",
    "NWM (real actions)": "1.13  |  0.35"}

KIND_NAMES = {"sparse": "sparse", "noisy": "noisy", "vq": "discrete"}


def paper_range(table: dict, kind: str, column: int | None = None) -> str:
    """The paper's values for a regulariser kind across its capacities, e.g. "x2.1-x2.5"."""
    name = KIND_NAMES.get(kind)
    values = [v if column is None else v[column] for (k, _), v in table.items() if k == name]
    return f"x{min(values):.2f}-x{max(values):.2f}" if values else "-"
