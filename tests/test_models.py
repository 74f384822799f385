"""IDM, predictor and the joint latent action model on tiny sizes and a toy world with a hidden action."""

import pytest
import torch

from lawm.config import ModelConfig, NoisyRegularizer, NoRegularizer, SparseRegularizer, VQRegularizer, ZeroLatent
from lawm.models import InverseDynamics, Predictor, build_latent_action_model

GRID, D_IN, LATENT, ACTIONS = (2, 2), 12, 8, 4
N = GRID[0] * GRID[1]
TINY = ModelConfig(dim=32, depth=2, heads=2, mlp_ratio=2.0, idm_depth=1, idm_split=1, latent_dim=LATENT)
NONE, ZERO = NoRegularizer(kind="none"), ZeroLatent(kind="zero")


def toy_states(batch: int, steps: int = 4, seed: int = 0) -> torch.Tensor:
    """[B, T, N, D_IN]: s_{t+1} = 0.5 s_t + pattern[a_t], a_t a hidden action drawn from ACTIONS patterns."""
    patterns = torch.randn(ACTIONS, N, D_IN, generator=torch.Generator().manual_seed(1234))  # the world's rule
    g = torch.Generator().manual_seed(seed)
    actions = torch.randint(ACTIONS, (batch, steps - 1), generator=g)  # [B, T-1]
    states = [torch.randn(batch, N, D_IN, generator=g)]
    for t in range(steps - 1):
        states.append(0.5 * states[-1] + patterns[actions[:, t]])  # [B, N, D]
    return torch.stack(states, dim=1)  # [B, T, N, D]


def train(model: torch.nn.Module, steps: int = 100, batch: int = 32, lr: float = 3e-3) -> list[float]:
    """Adam on fresh toy batches; returns the prediction losses."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        out = model(toy_states(batch, seed=step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["pred_loss"].item())
    return losses


@torch.no_grad()
def held_out_error(model: torch.nn.Module) -> float:
    model.eval()
    return model(toy_states(128, seed=10_000))["pred_loss"].item()


def tiny_lam(reg=NONE, seed: int = 0):
    torch.manual_seed(seed)
    return build_latent_action_model(D_IN, GRID, TINY, reg)


def open_gates(predictor: Predictor) -> None:
    """Random AdaLN modulation (and query shifts) and output head, so every block is active (an
    untrained predictor is the identity: it copies the last state)."""
    for block in predictor.blocks:
        for layer in (block.modulation[1], *([] if block.shift is None else [block.shift[1]])):
            torch.nn.init.normal_(layer.weight, std=0.3)
            torch.nn.init.normal_(layer.bias, std=0.3)
    torch.nn.init.normal_(predictor.out.weight, std=0.3)


def tiny_predictor(cond_dim: int = LATENT, query_shift: bool = False, abs_positions: bool = False,
                   keep_mean: bool = False) -> Predictor:
    torch.manual_seed(0)
    return Predictor(D_IN, GRID, cond_dim, dim=32, depth=2, heads=2, mlp_ratio=2.0, query_shift=query_shift,
                     abs_positions=abs_positions, keep_mean=keep_mean)


def test_idm_gives_one_latent_per_transition_from_that_pair_only():
    torch.manual_seed(0)
    idm = InverseDynamics(D_IN, GRID, out_dim=6, dim=32, depth=2, heads=2, mlp_ratio=2.0)
    states = torch.randn(2, 5, N, D_IN)
    z = idm(states)
    assert z.shape == (2, 4, 6)
    changed = states.clone()
    changed[:, 3] += 1.0  # s_3 enters z_2 = g(s_2, s_3) and z_3 = g(s_3, s_4) only
    z2 = idm(changed)
    torch.testing.assert_close(z2[:, :2], z[:, :2])
    assert not torch.allclose(z2[:, 2], z[:, 2]) and not torch.allclose(z2[:, 3], z[:, 3])
    swapped = states[:, [1, 0]]  # the reverse transition is a different action
    assert not torch.allclose(idm(swapped)[:, 0], z[:, 0], atol=1e-4)
    with pytest.raises(ValueError, match="states must be"):
        idm(torch.randn(2, 5, N + 1, D_IN))


def test_predictor_is_frame_causal():
    predictor = tiny_predictor()
    open_gates(predictor)
    states, cond = torch.randn(2, 4, N, D_IN), torch.randn(2, 4, LATENT)
    pred = predictor(states, cond)
    assert pred.shape == (2, 4, N, D_IN)
    future = states.clone()
    future[:, 2:] += 1.0  # later states cannot reach earlier predictions
    torch.testing.assert_close(predictor(future, cond)[:, :2], pred[:, :2])
    past = states.clone()
    past[:, 0] += 1.0  # an earlier state reaches every later prediction
    changed = predictor(past, cond)
    assert all(not torch.allclose(changed[:, t], pred[:, t]) for t in range(4))
    later_cond = cond.clone()
    later_cond[:, 2] += 1.0  # cond[:, t] drives outputs >= t only
    changed = predictor(states, later_cond)
    torch.testing.assert_close(changed[:, :2], pred[:, :2])
    assert not torch.allclose(changed[:, 2], pred[:, 2])
    with pytest.raises(ValueError, match="cond must be"):
        predictor(states, cond[:, :3])


def test_untrained_predictor_copies_the_last_state_and_learns_to_use_the_condition():
    predictor = tiny_predictor()
    states, target = torch.randn(4, 3, N, D_IN), torch.randn(4, 3, N, D_IN)
    cond_a, cond_b = torch.randn(4, 3, LATENT), torch.randn(4, 3, LATENT)
    torch.testing.assert_close(predictor(states, cond_a), states)  # residual head starts at zero
    opt = torch.optim.Adam(predictor.parameters(), lr=1e-2)
    for _ in range(2):  # step 1 opens the zero-initialised head, step 2 reaches the modulation
        opt.zero_grad()
        (predictor(states, cond_a) - target).abs().mean().backward()
        opt.step()
    with torch.no_grad():
        assert (predictor(states, cond_a) - predictor(states, cond_b)).abs().max() > 1e-4


def test_rollout_feeds_predictions_back_and_uses_the_context_conditions():
    predictor = tiny_predictor(cond_dim=3)  # e.g. a real-action world model
    open_gates(predictor)
    context, past, future = torch.randn(2, 2, N, D_IN), torch.randn(2, 1, 3), torch.randn(2, 3, 3)  # k=2, h=3
    with torch.no_grad():
        out = predictor.rollout(context, future, past)
        assert out.shape == (2, 3, N, D_IN)
        seq, conds = context, torch.cat([past, future], dim=1)  # the same loop by hand
        for _ in range(3):
            seq = torch.cat([seq, predictor(seq, conds[:, :seq.shape[1]])[:, -1:]], dim=1)
        torch.testing.assert_close(out, seq[:, 2:])
        torch.testing.assert_close(out[:, 0], predictor(context, conds[:, :2])[:, -1])
        assert not torch.allclose(predictor.rollout(context, future, past + 1.0), out)  # the context's own action
        assert predictor.rollout(context[:, :1], future).shape == (2, 3, N, D_IN)  # k = 1 needs none
    with pytest.raises(ValueError, match="needs context_conds"):
        predictor.rollout(context, future)
    with pytest.raises(ValueError, match="must cover"):
        predictor.rollout(context, future, conds)


def test_latent_action_model_outputs_and_teacher_forcing():
    lam = tiny_lam()
    open_gates(lam.predictor)
    states = toy_states(3, steps=5)
    out = lam(states)
    assert out["pred"].shape == (3, 4, N, D_IN) and out["z"].shape == (3, 4, LATENT)
    torch.testing.assert_close(out["loss"], out["pred_loss"] + out["reg_loss"])
    # equals the padded full pass (zero latent for the unscored last step), scored on steps 0..T-2
    padded = torch.cat([out["z"], torch.zeros(3, 1, LATENT)], dim=1)  # [B, T, L]
    full = lam.predictor(states, padded)  # [B, T, N, D]
    torch.testing.assert_close(out["pred"], full[:, :-1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out["pred_loss"], (full[:, :-1] - states[:, 1:]).abs().mean(), atol=1e-5, rtol=1e-4)
    lam.eval()
    z = lam.infer_latents(states)
    torch.testing.assert_close(lam.predict_next(states, z), lam(states)["pred"])
    rolled = lam.rollout(states[:, :2], z[:, 1:])  # context latents default to the IDM's
    assert rolled.shape == (3, 3, N, D_IN)
    torch.testing.assert_close(rolled[:, 0], lam.predict_next(states, z)[:, 1])
    torch.testing.assert_close(rolled, lam.rollout(states[:, :2], z[:, 1:], context_z=z[:, :1]))


def test_rollout_loss_scores_fed_back_predictions_and_trains_the_idm(tmp_path):
    from lawm.models.saved import latent_action_model_args, load_model, save_model

    states = toy_states(3, steps=5)
    teacher = tiny_lam()
    open_gates(teacher.predictor)
    assert teacher(states)["rollout_loss"].item() == 0.0  # rollout_steps 1: the paper's teacher forcing alone
    lam = build_latent_action_model(D_IN, GRID, TINY, NONE, rollout_steps=3)
    lam.load_state_dict(teacher.state_dict())
    out = lam(states)
    rolled = lam.predictor.rollout(states[:, :1], out["z"][:, :3])  # [B, 3, N, D]: s_1..s_3 from s_0 alone
    torch.testing.assert_close(out["rollout_loss"], (rolled - states[:, 1:4]).abs().mean())
    torch.testing.assert_close(out["loss"], out["pred_loss"] + out["rollout_loss"] + out["reg_loss"])
    assert not torch.allclose(rolled[:, 1:], out["pred"][:, 1:3])  # steps 2..3 see predictions, not states
    lam.zero_grad()
    out["rollout_loss"].backward()
    assert lam.idm.head.weight.grad.abs().sum() > 0  # z is shaped by the rollout too
    kwargs = latent_action_model_args({"token_dim": D_IN, "grid": list(GRID)}, TINY, NONE, 1, rollout_steps=3)
    assert load_model(save_model(tmp_path / "m.pt", lam, "latent_action_model", kwargs)).rollout_steps == 3
    kept = build_latent_action_model(D_IN, GRID, TINY, NONE, keep_mean=True)
    kwargs = latent_action_model_args({"token_dim": D_IN, "grid": list(GRID)}, TINY, NONE, 1, keep_mean=True)
    assert load_model(save_model(tmp_path / "k.pt", kept, "latent_action_model", kwargs)).predictor.keep_mean


def test_noisy_model_has_a_two_headed_idm_and_deterministic_latents():
    lam = tiny_lam(NoisyRegularizer(kind="noisy", beta=1e-3))
    assert lam.idm.head.out_features == 2 * LATENT
    states = toy_states(2)
    raw = lam.idm(states)
    z = lam.infer_latents(states)
    torch.testing.assert_close(z, raw[..., :LATENT])  # the mean
    torch.testing.assert_close(lam.infer_latents(states), z)
    lam.train()
    assert not torch.allclose(lam.infer_latents(states, deterministic=False), z)  # a sample


@pytest.mark.parametrize("reg", [NONE, SparseRegularizer(kind="sparse", l1=0.01),
                                 NoisyRegularizer(kind="noisy", beta=1e-3),
                                 VQRegularizer(kind="vq", codebook_size=64, commitment=0.25, reset_every=2)])
def test_every_regulariser_trains_under_bfloat16_autocast_in_float32(reg):
    lam = tiny_lam(reg)
    lam.train()
    opt = torch.optim.Adam(lam.parameters(), lr=1e-3)
    for step in range(4):  # VQ: dead codes are reset from the batch's latents at calls 2 and 4
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = lam(toy_states(8, seed=step))
        assert out["z"].dtype == torch.float32 and torch.isfinite(out["loss"])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert all(t.dtype == torch.float32 for t in (*lam.parameters(), *(b for b in lam.buffers() if b.is_floating_point())))
    if reg.kind == "vq":
        assert lam.regularizer.codes_reset > 0


def test_training_lowers_the_loss():
    losses = train(tiny_lam(), steps=100)
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10


def test_latents_beat_no_action_on_a_world_with_a_hidden_action():
    none, zero = tiny_lam(NONE), tiny_lam(ZERO)
    train(none, steps=150)
    train(zero, steps=150)
    assert held_out_error(none) < 0.5 * held_out_error(zero)


def test_zero_model_has_no_idm_and_never_sees_the_future():
    zero, none = tiny_lam(ZERO), tiny_lam(NONE)
    assert zero.idm is None
    assert sum(p.numel() for p in zero.parameters()) < sum(p.numel() for p in none.parameters())
    for lam in (zero, none):
        open_gates(lam.predictor)
    states = toy_states(2)
    assert (zero(states)["z"] == 0).all() and (zero.infer_latents(states) == 0).all()
    future = states.clone()
    future[:, 1] += 1.0  # s_1 is the target of step 0: only a model with an IDM can use it
    torch.testing.assert_close(zero(future)["pred"][:, 0], zero(states)["pred"][:, 0])
    assert not torch.allclose(none(future)["pred"][:, 0], none(states)["pred"][:, 0])


@pytest.mark.parametrize("query_shift, abs_positions, keep_mean",
                         [(False, False, False), (True, False, False), (False, True, False), (False, False, True)])
def test_step_with_cached_keys_equals_the_teacher_forced_pass(query_shift, abs_positions, keep_mean):
    predictor = tiny_predictor(query_shift=query_shift, abs_positions=abs_positions, keep_mean=keep_mean)
    open_gates(predictor)
    states, cond = torch.randn(3, 4, N, D_IN), torch.randn(3, 4, LATENT)
    with torch.no_grad():
        full = predictor(states, cond)  # [B, T, N, D]
        past = None
        for t in range(4):
            nxt, past = predictor.step(states[:, t], cond[:, t], past)
            torch.testing.assert_close(nxt, full[:, t], atol=1e-5, rtol=1e-4)
        assert past[0][0].shape[2] == 4 * N  # every block cached the keys of all four frames


def test_query_shift_starts_as_the_papers_predictor_and_moves_queries_by_its_displacement():
    from lawm.nn import grid_positions, rope_angles

    plain, shifted = tiny_predictor(), tiny_predictor(query_shift=True)
    open_gates(plain)
    missing = shifted.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(".shift." in key for key in missing)  # only the displacement layers are new: at zero
    states, cond = torch.randn(2, 3, N, D_IN), torch.randn(2, 3, LATENT)
    with torch.no_grad():
        torch.testing.assert_close(shifted(states, cond), plain(states, cond))
        block = shifted.blocks[0]
        block.shift[1].bias.copy_(torch.tensor([0.0, 1.0, 2.0, -0.5]))  # head 0: one token right; head 1: 2 down, half left
        pos = grid_positions(1, GRID)  # [N, 3]
        queries = block.query_angles(shifted.cond_embed(cond[:, :1]), rope_angles(pos, 16))  # [B, H, N, hd/2]
        for head, move in enumerate([(0.0, 0.0, 1.0), (0.0, 2.0, -0.5)]):  # RoPE is linear in the position
            torch.testing.assert_close(queries[0, head], rope_angles(pos + torch.tensor(move), 16))
        assert not torch.allclose(shifted(states, cond), plain(states, cond))


def test_the_idm_can_see_pixels_tokens_on_a_finer_grid():
    from lawm.config import ModelConfig
    from lawm.encoders.pixels import PixelsEncoder, split_tokens

    frames = torch.randint(0, 255, (2, 6, 32, 32, 3), dtype=torch.uint8)
    coarse = PixelsEncoder(32, 8, 2).encode(frames)  # [2, 3, 16, 384]
    assert torch.equal(split_tokens(coarse, (4, 4), 2, 2), PixelsEncoder(32, 4, 2).encode(frames))  # exact
    cfg = ModelConfig(dim=32, depth=1, heads=2, mlp_ratio=2.0, idm_depth=1, idm_split=2, latent_dim=LATENT)
    model = build_latent_action_model(384, (4, 4), cfg, NONE, tubelet=2)
    assert model.idm.grid == (8, 8) and model.idm.inp.in_features == 96
    out = model(coarse)
    assert out["z"].shape == (2, 2, LATENT) and out["pred"].shape == coarse[:, 1:].shape  # the predictor: cached grid


def test_a_saved_model_has_the_same_bytes_every_time_and_loads_back(tmp_path):
    from lawm.models.saved import build, load_model, save_model

    kwargs = {"action_dim": 2, "latent_dim": 4, "dim": 8, "action_scale": [1.0, 1.0]}
    torch.manual_seed(0)
    model = build("action_only_controller", kwargs)
    first = save_model(tmp_path / "a" / "controller.pt", model, "action_only_controller", kwargs)
    second = save_model(tmp_path / "b" / "controller.pt", model, "action_only_controller", kwargs)
    assert first.read_bytes() == second.read_bytes()  # no temporary name or random id in the archive
    loaded = load_model(first)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_keep_mean_predicts_the_last_states_mean_and_the_same_change_otherwise():
    """With `keep_mean` every prediction (teacher-forced and stepped) has its last state's mean over
    tokens and channels; it differs from the plain predictor's by a constant per state, no more."""
    plain, kept = tiny_predictor(), tiny_predictor(keep_mean=True)
    for predictor in (plain, kept):
        open_gates(predictor)
    kept.load_state_dict(plain.state_dict())
    states, cond = torch.randn(2, 3, N, D_IN), torch.randn(2, 3, LATENT)
    with torch.no_grad():
        free, pinned = plain(states, cond), kept(states, cond)  # [B, T, N, D]
        stepped, _ = kept.step(states[:, 0], cond[:, 0])  # [B, N, D]
    assert (free.mean((-2, -1)) - states.mean((-2, -1))).abs().min() > 1e-3  # the plain predictor moves the mean
    torch.testing.assert_close(pinned.mean((-2, -1)), states.mean((-2, -1)))
    torch.testing.assert_close(stepped.mean((-2, -1)), states[:, 0].mean((-2, -1)))
    offset = pinned - free  # [B, T, N, D]
    torch.testing.assert_close(offset, offset[:, :, :1, :1].expand_as(offset))


def test_change_weights_a_known_case_and_their_mean():
    """One token of four moves by a: with the state's uniform change removed it moved 3a/4 and the
    others a/4, so the relative changes are 2 and 2/3 (mean 1), mixed with 1 by the share. A still
    state, or one whose change is uniform (a brightness step), weighs every token 1 - share."""
    from lawm.models.latent_action_model import change_weights

    still = torch.zeros(1, 1, N, D_IN)  # [B, 1, N, D]
    moved = still.clone()
    moved[0, 0, 0] = 0.5
    states = torch.cat([still, moved, moved + 0.25], dim=1)  # [1, 3, N, D]: one token moves, then a uniform step
    w = change_weights(states, 0.5)  # [1, 2, N, 1]
    assert w.shape == (1, 2, N, 1)
    torch.testing.assert_close(w[0, 0, :, 0], torch.tensor([0.5 + 0.5 * 2, *[0.5 + 0.5 * 2 / 3] * 3]))
    torch.testing.assert_close(w[0, 1, :, 0], torch.full((N,), 0.5))
    torch.testing.assert_close(change_weights(states, 0.0), torch.ones(1, 2, N, 1))
    random = change_weights(toy_states(3), 1.0)  # [3, 3, N, 1]
    torch.testing.assert_close(random.mean(dim=-2), torch.ones(3, 3, 1))


def test_change_weighted_loss_weighs_each_tokens_error_and_is_saved_with_the_model(tmp_path):
    from lawm.models.latent_action_model import change_weights
    from lawm.models.saved import latent_action_model_args, load_model, save_model

    torch.manual_seed(0)
    plain = build_latent_action_model(D_IN, GRID, TINY, NONE)
    open_gates(plain.predictor)
    weighted = build_latent_action_model(D_IN, GRID, TINY, NONE, change_weight=0.5)
    weighted.load_state_dict(plain.state_dict())
    states = toy_states(4)
    out, out_w = plain(states), weighted(states)
    torch.testing.assert_close(out_w["pred"], out["pred"])  # the weights change the loss, not the model
    err = (out["pred"] - states[:, 1:]).abs()  # [B, T-1, N, D]
    torch.testing.assert_close(out["pred_loss"], err.mean())
    torch.testing.assert_close(out_w["pred_loss"], (change_weights(states, 0.5) * err).mean())
    assert not torch.allclose(out_w["pred_loss"], out["pred_loss"])
    kwargs = latent_action_model_args({"token_dim": D_IN, "grid": list(GRID)}, TINY, NONE, 1, change_weight=0.5)
    assert load_model(save_model(tmp_path / "w.pt", weighted, "latent_action_model", kwargs)).change_weight == 0.5


def test_only_absolute_positions_let_the_predictor_change_a_uniform_frame_by_place():
    """Under RoPE alone a token does not know where it is: a frame of equal tokens stays equal
    everywhere, so no condition can turn it. Fixed grid positions make the change depend on the cell;
    they are centred over the grid, with nothing common to every cell."""
    frame = torch.randn(1, 1, 1, D_IN).expand(2, 1, N, D_IN)  # [B, 1, N, D]: every token the same
    cond = torch.randn(2, 1, LATENT)
    plain, placed = tiny_predictor(), tiny_predictor(abs_positions=True)
    for predictor in (plain, placed):
        open_gates(predictor)
    with torch.no_grad():
        same = plain(frame, cond)  # [B, T, N, D]
        torch.testing.assert_close(same, same[:, :, :1].expand_as(same))
        moved = placed(frame, cond)
    assert (moved - moved[:, :, :1]).abs().amax(dim=-1)[:, :, 1:].min() > 1e-3  # every other cell differs from cell 0
    torch.testing.assert_close(placed.positions.mean(0), torch.zeros(placed.positions.shape[1]))
    assert placed.state_dict().keys() == plain.state_dict().keys()  # fixed, not learnt: saved models load either way
    assert placed.with_positions(torch.zeros(N, placed.positions.shape[1], dtype=torch.bfloat16)).dtype == torch.bfloat16
