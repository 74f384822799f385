"""The figures: the capacity sweep plots what the variants measured, strips label their rows."""

import numpy as np
from PIL import Image

from lawm.evaluation import plots


def test_the_capacity_figure_plots_error_against_each_kinds_coefficient(tmp_path, monkeypatch):
    metrics = {v: {"capacity_one_step_l1": e} for v, e in
               {"none": 0.03, "zero": 0.07, "sparse": 0.04, "sparse_strong": 0.06, "noisy": 0.035}.items()}
    regularizers = {"none": {"kind": "none"}, "zero": {"kind": "zero"}, "sparse": {"kind": "sparse", "l1": 0.01},
                    "sparse_strong": {"kind": "sparse", "l1": 0.4}, "noisy": {"kind": "noisy", "beta": 1e-4}}
    drawn = {}
    saved = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.setdefault("fig", fig) and saved(fig, path))
    path = plots.capacity(metrics, regularizers, tmp_path / "capacity.png")
    assert Image.open(path).size[0] > 600
    sweep = drawn["fig"].axes[1]
    lines = {line.get_label(): line for line in sweep.get_lines()}
    assert list(lines["sparse (l1)"].get_xdata()) == [0.01, 0.4]
    assert list(lines["sparse (l1)"].get_ydata()) == [0.04, 0.06]
    assert list(lines["noisy (beta)"].get_xdata()) == [1e-4]
    assert {"none (bound)", "zero (bound)"} <= set(lines) and sweep.get_xscale() == "log"


def test_strips_get_a_label_column_and_rows_of_any_width():
    rows = [np.zeros((8, 40, 3), np.uint8), np.zeros((8, 24, 3), np.uint8)]
    strip = plots.labelled_rows(rows, ["executed", "plan"], width=50)
    assert strip.shape == (16, 50 + 40, 3)
    assert (strip[:, :50] < 255).any()  # the labels are drawn
    assert (strip[8:, 50 + 24:] == 255).all()  # the shorter row is padded white


def test_a_plan_strip_shows_predicted_frames_of_another_size_at_the_executed_frames_size(tmp_path):
    executed = [np.full((64, 64, 3), 10 * k, np.uint8) for k in range(3)]  # the simulator's frames
    predicted = np.full((2, 48, 48, 3), 200, np.uint8)  # the encoder's 48 px frames
    goal = np.zeros((64, 64, 3), np.uint8)
    strip = np.asarray(Image.open(plots.plan_strip(executed, predicted, goal, tmp_path / "plan.png")))
    assert strip.shape[0] == 2 * 64
    plan_row = strip[64:, -5 * 64:]  # [64, 5 frames * 64, 3], after the label column
    assert (plan_row[:, 64:3 * 64] == 200).all()  # both predictions, at 64 px, after the blank first cell
    assert (plan_row[:, 3 * 64:] == 255).all()  # blank under the gap and the goal
