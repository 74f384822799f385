"""The one training loop: optimiser split, schedule, determinism, kill-and-resume, failure modes."""

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from lawm.config import TrainConfig
from lawm.optim import Muon
from lawm.training import (CheckpointMismatchError, NonFiniteLossError, StepBatchSampler, hidden_matrices,
                           lr_factor, make_optimizers, train)


class Block(nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h):
        return h + self.drop(torch.tanh(self.fc(self.norm(h))))


class Toy(nn.Module):
    """in-projection -> `blocks` -> head; optional dropout and reparameterisation-like noise."""

    def __init__(self, dim: int = 16, depth: int = 2, dropout: float = 0.0, noise: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Linear(4, dim)
        self.blocks = nn.ModuleList(Block(dim, dropout) for _ in range(depth))
        self.head = nn.Linear(dim, 1)
        self.noise = noise

    def forward(self, x):
        h = self.inp(x)
        if self.training and self.noise:
            h = h + self.noise * torch.randn_like(h)
        for block in self.blocks:
            h = block(h)
        return self.head(h).squeeze(-1)


class ToyData(torch.utils.data.Dataset):
    """y = a fixed nonlinear function of x; items are dicts of tensors plus a string id."""

    def __init__(self, n: int = 48):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 4, generator=g)
        self.y = torch.sin(self.x @ torch.tensor([1.0, -2.0, 0.5, 1.5]))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i], "clip_id": f"clip{i}"}


def mse(model, batch):
    loss = (model(batch["x"]) - batch["y"]).pow(2).mean()
    return loss, {"mse": loss.item(), "n_ids": float(len(batch["clip_id"]))}


def cfg(**kw) -> TrainConfig:
    base = dict(steps=12, batch_size=8, lr=3e-3, muon_lr=0.02, weight_decay=0.04, warmup_share=0.25,
                grad_clip=1.0, checkpoint_every=5, log_every=4, num_workers=0, processes=1,
                precision="float32")
    return TrainConfig(**{**base, **kw})


def run(tmp_path, name, c=None, seed=0, loss_fn=mse, model=None, **kw):
    model = model or Toy()
    result = train(model, ToyData(), loss_fn, c or cfg(), tmp_path / name, seed, progress=False, **kw)
    return model, result


def same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class Killed(Exception):
    pass


def killing_at(step: int, fn=mse):
    calls = {"n": 0}

    def loss_fn(model, batch):
        if calls["n"] == step:
            raise Killed
        calls["n"] += 1
        return fn(model, batch)
    return loss_fn


def test_loss_falls_and_model_is_returned_in_eval_mode(tmp_path):
    logs = []
    model, result = run(tmp_path, "a", cfg(steps=150, log_every=10, lr=1e-2), log=lambda m, s: logs.append(m))
    assert logs[-1]["mse"] < 0.3 * logs[0]["mse"]
    assert result.final_metrics["mse"] == logs[-1]["mse"]
    assert not model.training and result.step == 150 and result.resumed_from is None
    assert result.checkpoint == tmp_path / "a" / "last.pt" and result.checkpoint.is_file()


def test_bfloat16_runs_the_matmuls_in_bfloat16_keeps_float32_weights_and_trains_like_float32(tmp_path):
    finals = {}
    for precision in ("float32", "bfloat16"):
        model, dtypes, logs = Toy(), set(), []
        model.inp.register_forward_hook(lambda module, args, out: dtypes.add(out.dtype))
        run(tmp_path, precision, cfg(steps=150, log_every=10, lr=1e-2, precision=precision), model=model,
            log=lambda m, s: logs.append(m))
        assert dtypes == {getattr(torch, precision)}
        assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights
        assert logs[-1]["mse"] < 0.3 * logs[0]["mse"]
        finals[precision] = logs[-1]["mse"]
    assert finals["bfloat16"] == pytest.approx(finals["float32"], rel=0.5, abs=0.01)


def test_schedule_is_linear_warmup_then_cosine_to_zero(tmp_path):
    c = cfg(steps=100, warmup_share=0.1)
    assert lr_factor(0, c) == pytest.approx(0.1)
    assert lr_factor(9, c) == pytest.approx(1.0) and lr_factor(10, c) == pytest.approx(1.0)
    assert lr_factor(55, c) == pytest.approx(0.5)
    assert lr_factor(100, c) == pytest.approx(0.0, abs=1e-12)
    assert all(lr_factor(k, c) > lr_factor(k + 1, c) for k in range(10, 100))
    assert lr_factor(0, cfg(warmup_share=0.0)) == 1.0
    logs = {}
    run(tmp_path, "a", cfg(steps=12, log_every=1), log=lambda m, s: logs.__setitem__(s, m))
    for step, m in logs.items():  # the lr logged after update `step` is the one that update used
        assert m["lr"] == pytest.approx(3e-3 * lr_factor(step - 1, cfg()))
        assert m["lr_muon"] == pytest.approx(0.02 * lr_factor(step - 1, cfg()))


def test_muon_gets_exactly_the_hidden_matrices():
    model = Toy(depth=3)
    model.blocks[0].table = nn.Embedding(5, 16)  # an embedding inside the blocks stays with AdamW
    model.extra_blocks = nn.ModuleList([nn.Linear(16, 16)])
    hidden = {f"blocks.{i}.fc.weight" for i in range(3)} | {"extra_blocks.0.weight"}
    assert set(hidden_matrices(model)) == hidden
    names = {id(p): n for n, p in model.named_parameters()}
    (adamw, lr), (muon, muon_lr) = make_optimizers(model, cfg())
    assert isinstance(adamw, torch.optim.AdamW) and isinstance(muon, Muon)
    assert (lr, muon_lr) == (3e-3, 0.02) and muon.param_groups[0]["nesterov"]  # torch.optim.Muon's rule: see below
    in_muon = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    in_adamw = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert in_muon == hidden and in_adamw == set(names.values()) - hidden
    decayed = {names[id(p)] for g in adamw.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {"inp.weight", "head.weight", "blocks.0.table.weight"}
    [(only, _)] = make_optimizers(model, cfg(muon_lr=0.0))
    assert isinstance(only, torch.optim.AdamW) and sum(len(g["params"]) for g in only.param_groups) == len(names)


def test_batches_are_a_pure_function_of_seed_and_step():
    full = list(StepBatchSampler(10, 4, 9, seed=3))
    assert list(StepBatchSampler(10, 4, 9, seed=3, start=5)) == full[5:]
    flat = sum(full, [])
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))  # epochs
    assert flat[:10] != flat[10:20] and full != list(StepBatchSampler(10, 4, 9, seed=4))


@pytest.mark.parametrize("dropout,noise,precision", [(0.0, 0.0, "float32"), (0.3, 0.1, "float32"),
                                                     (0.3, 0.1, "bfloat16")])
@pytest.mark.parametrize("kill_at", [7, 10])
def test_killed_run_resumes_to_the_same_weights(tmp_path, dropout, noise, precision, kill_at):
    c = cfg(precision=precision)
    reference, ref = run(tmp_path, "ref", c, model=Toy(dropout=dropout, noise=noise))
    with pytest.raises(Killed):
        run(tmp_path, "b", c, model=Toy(dropout=dropout, noise=noise), loss_fn=killing_at(kill_at))
    resumed, res = run(tmp_path, "b", c, model=Toy(dropout=dropout, noise=noise))
    assert res.resumed_from == 5 * (kill_at // 5)
    assert same_state(reference, resumed)
    assert res.final_metrics == ref.final_metrics
    # a finished run is not trained again
    again, res2 = run(tmp_path, "b", c, model=Toy(dropout=dropout, noise=noise), loss_fn=killing_at(0))
    assert res2.resumed_from == 12 and same_state(again, reference) and res2.final_metrics == ref.final_metrics


def test_other_config_on_an_existing_checkpoint_is_a_clear_error(tmp_path):
    run(tmp_path, "a", cfg(steps=3))
    with pytest.raises(CheckpointMismatchError, match="delete"):
        run(tmp_path, "a", cfg(steps=3, lr=1e-3))
    with pytest.raises(CheckpointMismatchError):
        run(tmp_path, "a", cfg(steps=3), seed=1)
    with pytest.raises(CheckpointMismatchError):
        run(tmp_path, "a", cfg(steps=3), model=Toy(dim=8))


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def nan_at_7(model, batch):
        loss, terms = mse(model, batch)
        calls["n"] += 1
        return (loss * float("nan"), {**terms, "kl": float("nan")}) if calls["n"] == 8 else (loss, terms)

    with pytest.raises(NonFiniteLossError, match=r"step 7 .*kl"):
        run(tmp_path, "a", loss_fn=nan_at_7)
    state = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    assert state["step"] == 5 and all(torch.isfinite(v).all() for v in state["model"].values())
    reference, _ = run(tmp_path, "ref")
    resumed, res = run(tmp_path, "a")
    assert res.resumed_from == 5 and same_state(reference, resumed)


def test_log_gets_interval_means_every_log_every_steps(tmp_path):
    losses, logs = [], []

    def recording(model, batch):
        loss, terms = mse(model, batch)
        losses.append(loss.item())
        return loss, terms

    run(tmp_path, "a", loss_fn=recording, log=lambda m, s: logs.append((s, m)))
    assert [s for s, _ in logs] == [4, 8, 12]
    assert all(set(m) == {"loss", "mse", "n_ids", "grad_norm", "lr", "lr_muon", "samples_per_s"} for _, m in logs)
    assert logs[0][1]["loss"] == pytest.approx(sum(losses[:4]) / 4)
    assert logs[2][1]["loss"] == pytest.approx(sum(losses[8:]) / 4)
    assert logs[0][1]["n_ids"] == 8 and all(m["grad_norm"] > 0 and m["samples_per_s"] > 0 for _, m in logs)


def test_seed_decides_the_result(tmp_path):
    a, ra = run(tmp_path, "a", seed=0)
    b, rb = run(tmp_path, "b", seed=0)
    c, _ = run(tmp_path, "c", seed=1)
    assert same_state(a, b) and ra.final_metrics == rb.final_metrics
    assert not same_state(a, c)


def test_workers_do_not_change_the_result(tmp_path):
    a, ra = run(tmp_path, "a", cfg(num_workers=0))
    b, rb = run(tmp_path, "b", cfg(num_workers=2))
    assert same_state(a, b) and ra.final_metrics == rb.final_metrics


def test_gradients_are_clipped_before_the_update(tmp_path):
    seen, logs = [], []

    def record(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    handle = register_optimizer_step_pre_hook(record)
    try:
        run(tmp_path, "a", cfg(steps=4, grad_clip=1e-3, log_every=1, muon_lr=0.0), log=lambda m, s: logs.append(m))
    finally:
        handle.remove()
    assert len(seen) == 4 and all(n == pytest.approx(1e-3, rel=1e-3) for n in seen)
    assert all(m["grad_norm"] > 1e-2 for m in logs)  # the logged norm is the one before clipping


def test_muon_is_torch_muon_with_its_iteration_in_a_chosen_dtype():
    torch.manual_seed(0)
    weights = [torch.randn(24, 40), torch.randn(40, 24)]  # wide and tall
    grads = [torch.randn_like(w) for w in weights]
    mine = [w.clone().requires_grad_() for w in weights]
    ref = [w.clone().requires_grad_() for w in weights]
    ours = Muon(mine, lr=0.02, weight_decay=0.04, ns_dtype=torch.bfloat16)
    theirs = torch.optim.Muon(ref, lr=0.02, weight_decay=0.04, adjust_lr_fn="original")
    for step in range(3):
        for a, b, g in zip(mine, ref, grads):
            a.grad, b.grad = g * (step + 1), g * (step + 1)
        ours.step()
        theirs.step()
    assert all(torch.equal(a, b) for a, b in zip(mine, ref))  # bfloat16: the same numbers as torch
    fp32 = [w.clone().requires_grad_() for w in weights]
    opt = Muon(fp32, lr=0.02, weight_decay=0.04)  # on a CPU: float32
    for step in range(3):
        for a, g in zip(fp32, grads):
            a.grad = g * (step + 1)
        opt.step()
    assert all(torch.allclose(a, b, atol=2e-3) and not torch.equal(a, b) for a, b in zip(fp32, ref))
