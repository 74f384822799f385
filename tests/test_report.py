"""The report's summary compares the best latent-action planner with the real-action world model."""

from lawm.evaluation.report import _summary


def test_summary_picks_the_best_latent_planner_per_measure():
    plan = {
        "arm": {"offline": {"world_model": {"delta": 0.2}, "sparse": {"delta": 0.5}, "noisy": {"delta": 0.3},
                            "random": {"delta": 0.9}, "oracle": {"delta": 0.0}},
                "closed_loop": {"world_model": {"success": 0.4}, "sparse": {"success": 0.1}, "noisy": {"success": 0.2},
                                "random": {"success": 0.05}, "oracle": {"success": 1.0}}},
        "seconds": 12.0,
    }
    lines = _summary(plan, ["arm"], {"main": ["sparse", "noisy"]})
    assert len(lines) == 2  # no nav: its offline line is left out
    assert "`noisy` 0.3 against the real-action world model 0.2 (x1.50)" in lines[0]
    assert "`noisy` 0.2 against the real-action world model 0.4 (x0.50)" in lines[1]
    assert "higher is better" in lines[1]
    plan["arm"]["closed_loop"]["noisy"].update(success_vs_world_model=0.5, success_vs_world_model_lo=0.31,
                                               success_vs_world_model_hi=0.72)  # as the planning stage writes it
    assert "0.4 (x0.50 [0.31, 0.72])" in _summary(plan, ["arm"], {"main": ["sparse", "noisy"]})[1]
    by_data = _summary(plan, ["arm"], {"main": ["sparse"], "App. D": ["noisy"]})  # the best within each group
    assert len(by_data) == 4 and "main: best latent-action planner `sparse` 0.5" in by_data[0]
    assert "App. D: best latent-action planner `noisy` 0.3" in by_data[1]


def test_planner_groups_put_the_main_setting_first(repo_params):
    from lawm.config import with_overrides
    from lawm.evaluation.report import planner_groups

    params = with_overrides(repo_params, {"latent_actions.variants": ["sparse", "none", "none_app_d"],
                                          "latent_actions.regularizers": {
                                              **repo_params.model_dump(mode="json")["latent_actions"]["regularizers"],
                                              "none_app_d": {"kind": "none"}},
                                          "latent_actions.variant_domain_share": {"none_app_d": 0.25},
                                          "controller.variants": ["none_app_d", "sparse", "none"]})
    groups = list(planner_groups(params).items())
    assert groups[0][1] == ["sparse", "none"] and "main setting" in groups[0][0]
    assert groups[1][1] == ["none_app_d"] and "25% of windows" in groups[1][0]


def test_the_summary_section_is_read_back_and_shares_print_plainly(tmp_path):
    from lawm.evaluation.report import SUMMARY, _shares, summary_of

    report = tmp_path / "report.md"
    report.write_text(f"# lawm report\n\nintro\n\n{SUMMARY}\n\n- one\n- two\n\n## Capacity (paper Fig. 4)\n\n| a |\n")
    assert summary_of(report) == f"{SUMMARY}\n\n- one\n- two"
    assert _shares({"none_app_d": 0.25, "other": 0.5}) == "none_app_d 0.25, other 0.5"
    assert _shares({}) == "none"
