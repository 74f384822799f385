"""Progress outside a terminal: log lines on an interval, not one per step."""

import logging
import threading

from lawm.progress import progress


def test_a_loop_that_sets_a_postfix_every_step_logs_only_its_first_and_last_line(caplog):
    caplog.set_level(logging.INFO, logger="lawm.progress")
    bar = progress(total=500, desc="train", unit="step", terminal=False)
    for step in range(500):
        bar.update(1)
        bar.set_postfix(loss=f"{1 / (step + 1):.4g}")
        bar.set_postfix_str(f"planner {step}")
    bar.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "lawm.progress"]
    assert len(lines) == 2, lines  # all 500 steps fall inside one 30 s interval
    assert lines[0].startswith("train: 0/500 step") and lines[-1].startswith("train: 500/500 step")
    assert "\r" not in "".join(lines)


def test_log_lines_come_only_from_the_thread_that_drives_the_bar():
    # tqdm's monitor thread would redraw a slow bar itself: outside the flow run's context, so
    # Prefect would warn and drop the line from the run's log
    from tqdm._monitor import TMonitor

    bar = progress(total=3, desc="slow", terminal=False)
    monitors = [t for t in threading.enumerate() if isinstance(t, TMonitor) and t.tqdm_cls is type(bar)]
    bar.close()
    assert monitors == []
