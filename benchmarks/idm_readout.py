"""The inverse dynamics model's last block on its readout row only, against the whole block.

    python benchmarks/idm_readout.py [--quick]

The IDM reads its latent from one readout token, so its last block needs that token's row alone
(`lawm.nn.Block.first_row`: one query attends over every key, the MLP runs on one row), not the
2N + 1 rows of `Block.forward` (the reference, `forward(x)[:, :1]`). With the default 8 px IDM
tokens that is 1 row of 129 per transition.

At params.yaml's sizes (random weights, the default pixels states [16, 8, 16, 1536]), for the IDM
variants `none` and `sparse`, timed in alternation in one process:

  train step   forward, loss, backward, AdamW + Muon (`common.train_step`)
  latents      the IDM's deterministic latents of the batch, no gradients (evaluation, planning)

Before timing, both ways give the same latents and gradients to float tolerance.
Results: benchmarks/results/idm_readout.json.
"""

from __future__ import annotations

from contextlib import nullcontext
from unittest import mock

import torch

try:
    from benchmarks.common import default_params, interleaved, latent_action_model, run_benchmark, table, train_step
except ModuleNotFoundError:  # run as `python benchmarks/idm_readout.py`
    from common import default_params, interleaved, latent_action_model, run_benchmark, table, train_step

from lawm.nn import Block
from lawm.runtime import configure_threads
from lawm.training import make_optimizers

VARIANTS = ("none", "sparse")


def path(reference: bool):
    """The reference path if `reference`: the IDM's last block computes every row and keeps the first."""
    return mock.patch.object(Block, "first_row", lambda self, x, angles=None: self.forward(x, angles)[:, :1]) \
        if reference else nullcontext()


def same_results(model, states) -> float:
    """Largest difference of latents and IDM gradients between both ways (raises past tolerance)."""
    outs = []
    for reference in (False, True):
        model.zero_grad(set_to_none=True)
        with path(reference):
            z = model.idm(states)  # [B, T-1, raw]
            z.square().sum().backward()
        outs.append((z.detach(), [p.grad.clone() for p in model.idm.parameters()]))
    (z_fast, g_fast), (z_ref, g_ref) = outs
    torch.testing.assert_close(z_fast, z_ref)
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))  # to the gradient's scale
    model.zero_grad(set_to_none=True)
    return float((z_fast - z_ref).abs().max())


def run(quick: bool) -> dict:
    configure_threads()
    params = default_params()
    repeats = 3 if quick else 7
    rows = {}
    for variant in VARIANTS:
        model, states = latent_action_model(variant, params)  # states [B, T, N, D]
        max_diff = same_results(model, states)
        optimizers = make_optimizers(model, params.latent_actions.train)

        def step(reference: bool):
            with path(reference):
                train_step(model, optimizers, states)

        def latents(reference: bool):
            with torch.no_grad(), path(reference):
                model.infer_latents(states)

        times = interleaved({"step": lambda: step(False), "step_ref": lambda: step(True),
                             "latents": lambda: latents(False), "latents_ref": lambda: latents(True)},
                            repeats, min_time=1.0)
        rows[variant] = {**times, "max_latent_diff": max_diff}
    return {"variants": rows, "threads": torch.get_num_threads(), "batch": list(states.shape)}


def report(res: dict) -> str:
    rows = [[v, r["step_ref"], r["step"], r["step_ref"] / r["step"], r["latents_ref"] * 1e3, r["latents"] * 1e3,
             r["latents_ref"] / r["latents"], r["max_latent_diff"]] for v, r in res["variants"].items()]
    return table(["variant", "train step, whole block (s)", "readout row (s)", "speed-up",
                  "latents, whole block (ms)", "readout row (ms)", "speed-up", "max latent difference"], rows,
                 title=f"IDM last block: readout row only vs whole block (batch {res['batch']}, "
                       f"{res['threads']} threads, fastest of the alternated timings)")


if __name__ == "__main__":
    run_benchmark("idm_readout", __doc__, run, report)
