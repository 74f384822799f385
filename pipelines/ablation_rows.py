"""The rows of the ablation table (`pipelines.ablation`): each a set of params overrides, whose change
it is (the paper's or ours), and why. Add a row here to run it with `python -m pipelines.ablation run NAME`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lawm.config import read_profile

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
STEERING = PROFILES / "steering.yaml"  # row patch8_long_wild_tabletop_half_noisy_light
STEERING_6X6 = PROFILES / "steering_6x6.yaml"  # row size48_patch8_wild3x_steps2x_tabletop_half_noisy_light


@dataclass(frozen=True)
class Ablation:
    """One row: params overrides (dotted keys of params.yaml), whose change it is, and why."""
    name: str
    overrides: dict[str, object]
    source: str  # "paper" or "ours"
    why: str


# 16 px states blind to the flicker, grid positions in the predictor (row gain_norm_abs_positions)
GAIN_NORM_ABS_POSITIONS = {"features.encoder.gain_norm": True, "latent_actions.model.abs_positions": True}
# and the steering profile's wild data: half the videos over a table top (row gain_norm_abs_positions_tabletop_half)
GAIN_NORM_ABS_POSITIONS_TABLETOP_HALF = {**GAIN_NORM_ABS_POSITIONS, "worlds.wild.tabletop_share": 0.5}
# 8 px states blind to the flicker (row patch8_gain_norm and the rows built on it)
PATCH8_GAIN_NORM = {"features.encoder.patch_size": 8, "latent_actions.model.idm_split": 1,
                    "features.encoder.gain_norm": True}
# and grid positions in the predictor (row patch8_abs_positions)
PATCH8_ABS_POSITIONS = {**PATCH8_GAIN_NORM, "latent_actions.model.abs_positions": True}
# patch8_abs_positions with 3x the wild videos, trained 3x the steps (row patch8_long_wild)
LONG_WILD = {**PATCH8_ABS_POSITIONS, "worlds.wild.videos": 144, "latent_actions.train.steps": 1200}
# and a quarter of the wild videos over a table top (row patch8_long_wild_tabletop)
LONG_WILD_TABLETOP = {**LONG_WILD, "worlds.wild.tabletop_share": 0.25}
# and noisy at beta 1e-5 (row patch8_long_wild_tabletop_noisy_light, the steering profile until 2026-12-05)
LONG_WILD_TABLETOP_NOISY_LIGHT = {**LONG_WILD_TABLETOP, "latent_actions.regularizers.noisy.beta": 1e-5}
# profiles/steering.yaml: that with half the wild videos over a table top (row ..._tabletop_half_noisy_light)
STEERING_PROFILE = read_profile(STEERING)
# profiles/steering_6x6.yaml: the steering profile at 48 px states in 8 px patches (a 6x6 grid), 800 steps
STEERING_6X6_PROFILE = read_profile(STEERING_6X6)
# that grid at the steering profile's 1200 steps (row size48_patch8_long_wild_..., and the dose rows from it)
GRID6_STEERING = {**STEERING_6X6_PROFILE,
                  "latent_actions.train.steps": STEERING_PROFILE["latent_actions.train.steps"]}
DEFAULTS = Ablation("defaults", {}, "-",
                    "params.yaml's defaults at the commit the line names, with the metrics committed there")
ABLATIONS = [
    Ablation("no_blur", {"features.encoder.blur": 0.0}, "ours", "states without the 2 px blur"),
    Ablation("gain_norm", {"features.encoder.gain_norm": True}, "ours",
             "each frame scaled to mean intensity 0.5 before the blur: states blind to the wild flicker"),
    Ablation("camera_segments", {"worlds.wild.camera_motion": "segments"}, "ours",
             "the wild camera walks, looks around and stands in 0.5-1 s segments instead of smooth AR(1) motion"),
    Ablation("idm_coarse", {"latent_actions.model.idm_split": 1}, "ours",
             "the IDM on the cached 16 px tokens instead of 8 px ones"),
    Ablation("idm_depth2", {"latent_actions.model.idm_depth": 2}, "ours", "a 2-block IDM (about 1.8x the step time)"),
    Ablation("abs_positions", {"latent_actions.model.abs_positions": True}, "ours",
             "the predictor's tokens know their grid cell (a turn of the view moves content by an amount that "
             "depends on where it is), at the default 16 px states"),
    Ablation("app_d_quarter", {"latent_actions.variant_domain_share.none_app_d": 0.25}, "paper",
             "App. D with a quarter of its windows from arm and nav, the default until 2026-12-08 (as row "
             "app_d_three_quarters from that default, three quarters met App. D's bars on two draws, a quarter "
             "on one)"),
    Ablation("abs_positions_app_d_steps3x",
             {"latent_actions.model.abs_positions": True, "latent_actions.variant_steps": {"none_app_d": 1200}}, "ours",
             "abs_positions with App. D trained 3x the steps (about 7,000 nav windows: what its latent needed to "
             "take the turn in scratch trainings); profiles/app_d_three_quarters.yaml"),
    Ablation("gain_norm_abs_positions", GAIN_NORM_ABS_POSITIONS, "ours",
             "gain_norm and abs_positions together, at the default 16 px states"),
    Ablation("gain_norm_abs_positions_tabletop_half", GAIN_NORM_ABS_POSITIONS_TABLETOP_HALF,
             "ours", "gain_norm_abs_positions, and half the wild videos over a table top: the steering profile's "
                     "states and wild data at the default's 16 px states, 48 videos and 400 steps (its compute)"),
    Ablation("gain_norm_abs_positions_tabletop_half_camera_segments",
             {**GAIN_NORM_ABS_POSITIONS_TABLETOP_HALF, "worlds.wild.camera_motion": "segments"},
             "ours", "gain_norm_abs_positions_tabletop_half, and the wild camera walks, looks around and stands in "
                     "0.5-1 s segments: smooth AR(1) motion continues what the past shows, so the predictor needs "
                     "no z for it, while a planner's nav actions change course"),
    Ablation("size48_patch8_tabletop_half",
             {**GAIN_NORM_ABS_POSITIONS_TABLETOP_HALF, "features.encoder.image_size": 48,
              "features.encoder.patch_size": 8, "latent_actions.model.idm_split": 1},
             "ours", "gain_norm_abs_positions_tabletop_half with 48 px states in 8 px patches: a 6x6 grid of "
                     "384-d tokens, a move crosses tokens as at 8 px on 64 px frames, for about half that "
                     "grid's tokens (at 16 px nav did not steer)"),
    Ablation("patch8", {"features.encoder.patch_size": 8, "latent_actions.model.idm_split": 1}, "ours",
             "8 px patches everywhere (4x the tokens)"),
    Ablation("patch8_gain_norm", PATCH8_GAIN_NORM, "ours",
             "8 px patches everywhere and states blind to the flicker (the best latent planner of 2026-12-01)"),
    Ablation("patch8_query_shift", {**PATCH8_GAIN_NORM, "latent_actions.model.query_shift": True},
             "ours", "patch8_gain_norm, and the condition also moves each attention head's queries (z can say where "
                     "content moves)"),
    Ablation("patch8_decisions", {**PATCH8_GAIN_NORM, "worlds.wild.manipulator_motion": "decisions"},
             "ours", "patch8_gain_norm, and the wild manipulators move in held steps the past does not predict, "
                     "as a planner's actions come"),
    Ablation("patch8_idm_depth2", {**PATCH8_GAIN_NORM, "latent_actions.model.idm_depth": 2},
             "ours", "patch8_gain_norm with a 2-block IDM: its tokens compare s_t with s_t+1 before the readout "
                     "reads them"),
    Ablation("patch8_abs_positions", PATCH8_ABS_POSITIONS, "ours",
             "patch8_gain_norm, and the predictor's tokens know their grid cell (a turn of the view moves "
             "content by an amount that depends on where it is)"),
    Ablation("patch8_long_wild", LONG_WILD,
             "ours", "patch8_abs_positions with 3x the wild videos and 3x the latent-action training steps together "
                     "(the paper's main setting leans on far more in-the-wild video, trained far longer; here more "
                     "steps alone overfit 48 videos and more videos alone diluted the same steps)"),
    Ablation("patch8_long_wild_tabletop", LONG_WILD_TABLETOP,
             "ours", "patch8_long_wild, and a quarter of the wild videos show one hand at work over a table top "
                     "(at 48 videos and 400 steps such scenes taught the predictor arm scenes, not the planner)"),
    Ablation("patch8_long_wild_tabletop_half", {**LONG_WILD, "worlds.wild.tabletop_share": 0.5},
             "ours", "patch8_long_wild_tabletop with half the wild videos over a table top (the next dose: at a "
                     "quarter the main setting's arm planner's predictor answered an action through z half as "
                     "much as the real-action model does)"),
    Ablation("patch8_long_wild_tabletop_noisy_light", LONG_WILD_TABLETOP_NOISY_LIGHT,
             "ours", "patch8_long_wild_tabletop with the light noisy point at beta 1e-5 (the paper's sweep reaches "
                     "1e-6): under these states the reconstruction loss is a third smaller, and at 1e-4 noisy sat "
                     "at 0.42 of the way from none to zero; the steering profile until 2026-12-05"),
    Ablation("patch8_long_wild_tabletop_sparse_light",
             {**LONG_WILD_TABLETOP_NOISY_LIGHT, "latent_actions.regularizers.sparse.l1": 0.001},
             "ours", "patch8_long_wild_tabletop_noisy_light with the light sparse point at l1 1e-3, a tenth of the "
                     "paper's lightest (at 1e-2 sparse carried nothing under these states: position 1.12, "
                     "z -> action R^2 0.01)"),
    Ablation("patch8_long_wild_tabletop_half_noisy_light", STEERING_PROFILE,
             "ours", "patch8_long_wild_tabletop_half with noisy at beta 1e-5: profiles/steering.yaml (half the "
                     "wild videos over a table top planned closer to the world model than a quarter on three "
                     "seeds, with and without domain data)"),
    Ablation("size48_patch8_long_wild_tabletop_half_noisy_light", GRID6_STEERING,
             "ours", "the steering profile with 48 px states in 8 px patches: a 6x6 grid instead of 8x8, a move "
                     "still crosses tokens, for about half the profile's tokens (at the default's data and steps "
                     "the 6x6 grid steered on one seed of two)"),
    Ablation("size48_patch8_wild2x_tabletop_half_noisy_light",
             {**GRID6_STEERING, "worlds.wild.videos": 96, "latent_actions.train.steps": 800},
             "ours", "the 6x6 grid with 2x the default's wild video and steps, not the profile's 3x (at 1x it "
                     "steered on one seed of two, at 3x on three; cost at 2x between the two)"),
    Ablation("size48_patch8_wild2x_steps3x_tabletop_half_noisy_light",
             {**GRID6_STEERING, "worlds.wild.videos": 96},
             "ours", "the 6x6 grid with 2x the default's wild video trained 3x as long (with the 2x-video, 2x-steps "
                     "and 3x-video, 3x-steps rows: whether steps or data carry the main setting)"),
    Ablation("size48_patch8_wild3x_steps2x_tabletop_half_noisy_light", STEERING_6X6_PROFILE,
             "ours", "the 6x6 grid with 3x the default's wild video trained 2x as long (the other half of that "
                     "question); profiles/steering_6x6.yaml"),
    Ablation("lam_rollout", {"latent_actions.rollout_steps": 2}, "ours",
             "the latent-action model also takes the world model's 2-step rollout loss (about 1.2x the step time)"),
    Ablation("wild_manipulators", {"worlds.wild.manipulator_share": 0.5}, "ours",
             "half of the wild agents are manipulators (hands that move objects, as egocentric video has)"),
    Ablation("lam_steps_200", {"latent_actions.train.steps": 200, "latent_actions.train.lr": 0.0009,
                               "latent_actions.train.muon_lr": 0.03},
             "ours", "half the latent-action training steps at 1.5x both learning rates (speed: the eight "
                     "variants are 8.7 of the default run's 22.5 minutes)"),
    Ablation("controller_steps_600", {"controller.train.steps": 600},
             "ours", "the controllers trained 600 steps, the default until 2026-12-06 (as row controller_steps_300 "
                     "from that default, 300 steps fit the held-out rollouts better on 9 of 10 pairs)"),
    Ablation("wild_tabletop", {"worlds.wild.tabletop_share": 0.25}, "ours",
             "a quarter of the wild videos show hands at work over a table top, as much in-the-wild video does"),
    Ablation("wild_tabletop_half", {"worlds.wild.tabletop_share": 0.5}, "ours",
             "half the wild videos show a hand at work over a table top (the next dose: with the change-weighted "
             "loss a quarter lifted the main setting's arm and DROID planning and narrowed the capacity range)"),
    Ablation("free_mean", {"latent_actions.keep_mean": False}, "ours",
             "the latent-action model's predictor may change a state's mean intensity, the default until "
             "2026-12-07 (the rows above ran with it): its latent is paid for the wild flicker's uniform part"),
    Ablation("plain_loss", {"latent_actions.change_weight": 0.0}, "ours",
             "the latent-action model's prediction loss weighs every token alike (the paper's), the default until "
             "2026-12-07, 10:50 (the rows above ran with it): the few tokens an action moves count as little as the "
             "still background"),
]
