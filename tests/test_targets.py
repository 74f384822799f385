"""The reproduction's bars: each check passes and fails on a known case, with its evidence."""

from lawm.evaluation import targets


def _loop(success: float, lo: float, hi: float) -> dict:
    return {"success": success, "success_lo": lo, "success_hi": hi}


PLAN = {
    "arm": {
        "closed_loop": {"world_model": _loop(0.6, 0.5, 0.7), "random": _loop(0.02, 0.01, 0.07),
                        "oracle": _loop(1.0, 0.96, 1.0), "none": _loop(0.3, 0.2, 0.4),
                        "none_app_d": _loop(0.45, 0.35, 0.55)},
        "offline": {"world_model": {"delta": 0.2, "size_ratio": 0.9, "direction_cosine": 0.94},
                    "random": {"delta": 0.3}, "oracle": {"delta": 0.0},
                    "none": {"delta": 0.35, "size_ratio": 1.4, "direction_cosine": 0.45}, "none_app_d": {"delta": 0.28}},
    },
    "nav": {
        "closed_loop": {"world_model": _loop(0.3, 0.2, 0.4), "random": _loop(0.0, 0.0, 0.04),
                        "oracle": _loop(1.0, 0.96, 1.0), "none": _loop(0.21, 0.03, 0.3),
                        "none_app_d": _loop(0.21, 0.14, 0.3)},
        "offline": {"world_model": {"rpe": 0.06}, "none": {"rpe": 0.07}},  # RECON: no Δ bar
    },
    "seconds": 3.0,
}
LATENT = {"none": {"action_r2_arm": 0.4, "latent_use_arm": 1.02, "action_r2_nav": 0.1, "latent_use_nav": 1.05,
                   "probe_r2_flicker": 0.9, "probe_r2_camera": 0.2, "probe_r2_agents": 0.01},
          "none_app_d": {"action_r2_arm": 0.62, "latent_use_arm": 1.4, "action_r2_nav": 0.2, "latent_use_nav": 1.1}}
GROUPS = {"main": ["none"], "App. D": ["none_app_d"]}


def test_closed_loop_needs_the_ratio_and_an_interval_above_random():
    checks = {c.target.split(":")[0]: c for c in targets.closed_loop(PLAN, LATENT, GROUPS, ["arm", "nav"])}
    assert len(checks) == 4
    assert not checks["closed loop arm, main"].met  # 0.5x
    assert checks["closed loop arm, App. D"].met  # 0.75x, 0.35 above random's 0.07
    assert "0.75x" in checks["closed loop arm, App. D"].measured
    assert checks["closed loop arm, App. D"].evidence == "`none_app_d` on arm: z -> action R^2 0.62, z use 1.400"
    assert not checks["closed loop nav, main"].met  # 0.7x, but its interval reaches random's
    assert checks["closed loop nav, App. D"].met


def test_droid_bar_only_where_the_droid_protocol_planned():
    checks = targets.droid(PLAN, LATENT, GROUPS, ["arm", "nav"])
    assert [c.met for c in checks] == [False, True]  # 1.75x, 1.4x; nav (RECON) has no Δ
    assert "1.75x" in checks[0].measured and "random 0.300" in checks[0].measured
    assert checks[0].evidence == ("`none` on arm: z -> action R^2 0.40, z use 1.020; plans 1.40x the true size, "
                                  "direction cosine 0.45 (world model 0.90x, 0.94)")
    assert checks[1].evidence == "`none_app_d` on arm: z -> action R^2 0.62, z use 1.400"  # no sums: R^2 alone


def test_action_r2_takes_the_best_variant_per_domain():
    arm, nav = targets.action_r2(LATENT, ["arm", "nav"])
    assert arm.met and "`none_app_d` 0.62" == arm.measured
    assert not nav.met and "`none_app_d` 0.20" == nav.measured
    no_r2 = {**LATENT, "odd": {"action_r2_arm": float("nan")}}  # NaN (actions that never vary) is no best
    assert targets.action_r2(no_r2, ["arm"])[0].measured == "`none_app_d` 0.62"


def test_evidence_names_what_each_action_dimension_carries():
    by_dim = {"action_r2_nav/forward": 0.46, "action_r2_nav/strafe": 0.09, "action_r2_nav/yaw": -0.04,
              "action_r2_nav_far/yaw": 0.9}  # another domain whose name starts with this one's
    latent = {**LATENT, "none_app_d": {**LATENT["none_app_d"], **by_dim}}
    nav = targets.action_r2(latent, ["nav"])[0]
    assert nav.evidence == ("`none_app_d` on nav: z -> action R^2 0.20 (forward 0.46, strafe 0.09, yaw -0.04), "
                            "z use 1.100")


def test_capacity_range_per_family_with_two_strengths():
    kinds = {"none": "none", "zero": "zero", "sparse": "sparse", "sparse_strong": "sparse",
             "noisy": "noisy", "noisy_strong": "noisy", "vq": "vq"}
    positions = {"sparse_capacity_position": 0.15, "sparse_strong_capacity_position": 0.93,
                 "noisy_capacity_position": 0.4, "noisy_strong_capacity_position": 1.05, "vq_capacity_position": 0.5}
    noisy, sparse = targets.capacity(positions, kinds, LATENT)  # vq has one strength: no check
    assert sparse.met and not noisy.met  # noisy's weakest is 0.4 from none
    assert sparse.evidence == "`none`'s latent carries (probe R^2): flicker 0.90, camera 0.20, agents 0.01"


def test_best_planner_skips_the_baselines_and_planners_without_a_finite_result():
    results = PLAN["arm"]["closed_loop"]
    assert targets.best_planner(results, ["none", "oracle", "vq"], "success", lower_better=False) == "none"
    assert targets.best_planner(results, ["world_model", "vq"], "success", lower_better=False) is None
    unfinished = {**results, "none": {**results["none"], "success": float("nan")}, "sparse": {}}
    assert targets.best_planner(unfinished, ["none", "sparse"], "success", lower_better=False) is None


def test_a_ratio_interval_that_holds_the_bar_is_within_the_episodes_noise():
    interval = {"success_vs_world_model_lo": 0.45, "success_vs_world_model_hi": 1.02}
    plan = {"arm": {"closed_loop": {**PLAN["arm"]["closed_loop"],
                                    "none_app_d": {**PLAN["arm"]["closed_loop"]["none_app_d"], **interval}}}}
    checks = {c.target.split(":")[0]: c for c in targets.closed_loop(plan, LATENT, GROUPS, ["arm"])}
    app_d, main = checks["closed loop arm, App. D"], checks["closed loop arm, main"]
    assert "= 0.75x [0.45, 1.02];" in app_d.measured
    assert app_d.met and app_d.within_noise and app_d.verdict == "yes, within the episodes' noise"
    assert not main.within_noise and main.verdict == "**no**" and "= 0.50x;" in main.measured  # no interval: none shown
    below = {"success_vs_world_model_lo": 0.2, "success_vs_world_model_hi": 0.6}  # wholly under 0.67
    plan["arm"]["closed_loop"]["none"] = {**PLAN["arm"]["closed_loop"]["none"], **below}
    main = {c.target.split(":")[0]: c for c in targets.closed_loop(plan, LATENT, GROUPS, ["arm"])}["closed loop arm, main"]
    assert not main.met and not main.within_noise and "0.50x [0.20, 0.60]" in main.measured
    droid = {"arm": {"offline": {**PLAN["arm"]["offline"], "none_app_d": {
        "delta": 0.28, "delta_vs_world_model_lo": 1.1, "delta_vs_world_model_hi": 1.9}}}}
    check = targets.droid(droid, LATENT, GROUPS, ["arm"])[1]
    assert check.met and check.within_noise and "1.40x [1.10, 1.90]" in check.measured
