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
    lines = _summary(plan, ["arm"])
    assert len(lines) == 2  # no nav: its offline line is left out
    assert "`noisy` 0.3 against the real-action world model 0.2 (x1.50)" in lines[0]
    assert "`noisy` 0.2 against the real-action world model 0.4 (x0.50)" in lines[1]
    assert "higher is better" in lines[1]
