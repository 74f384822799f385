"""A tiny latent-action training run, for tests/test_distributed.py: alone, or under torchrun.

    python -m tests.distributed_train OUT            one process
    torchrun --standalone --nproc-per-node 2 -m tests.distributed_train OUT

Writes OUT/losses.json (the loss of every step, as `log` gets it, and the windows rank 0's loss saw
at each step) and OUT/model.pt from rank 0;
the checkpoint folder is OUT/checkpoints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from lawm.config import TrainConfig
from lawm.distributed import init, world
from lawm.models.losses import lam_loss
from lawm.models.saved import build
from lawm.training import train

CFG = TrainConfig(steps=8, batch_size=4, lr=3e-3, muon_lr=0.02, weight_decay=0.04, warmup_share=0.25,
                  grad_clip=1.0, checkpoint_every=4, log_every=1, num_workers=0, processes=1,
                  precision="float32")
# `none`: a regulariser that draws noise draws it per rank, so its samples differ from one process's
MODEL = {"token_dim": 12, "grid": [2, 2], "tubelet": 2, "reg_cfg": {"kind": "none"},
         "model_cfg": {"dim": 24, "depth": 2, "heads": 2, "mlp_ratio": 2.0, "idm_depth": 1, "idm_split": 1,
                       "latent_dim": 4}}


class Windows(torch.utils.data.Dataset):
    """16 random windows of 4 states of 2 x 2 tokens of 12."""

    def __init__(self):
        self.states = torch.randn(16, 4, 4, 12, generator=torch.Generator().manual_seed(3))

    def __len__(self) -> int:
        return len(self.states)

    def __getitem__(self, i: int) -> dict:
        return {"states": self.states[i]}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    init(torch.device("cpu"))
    torch.manual_seed(0)
    model = build("latent_action_model", MODEL)
    losses, batches = [], []

    def loss(model, batch):
        batches.append(len(batch["states"]))
        return lam_loss(model, batch)

    train(model, Windows(), loss, CFG, out / "checkpoints", seed=0, progress=False,
          log=lambda metrics, step: losses.append(metrics["loss"]))
    rank, processes = world()
    if rank == 0:
        (out / "losses.json").write_text(json.dumps({"processes": processes, "losses": losses, "batches": batches}))
        torch.save(model.state_dict(), out / "model.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
