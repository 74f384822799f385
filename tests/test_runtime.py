"""Thread settings: every torch process takes its threads from the cores it may use."""

import os
import subprocess
import sys

import pytest

from lawm.runtime import thread_count, usable_cores
from tests.conftest import ROOT


def test_threads_follow_the_knobs_and_never_exceed_the_cores():
    cores = usable_cores()
    assert thread_count({}) == cores
    assert thread_count({"OMP_NUM_THREADS": "1"}) == 1
    assert thread_count({"OMP_NUM_THREADS": "1", "LAWM_THREADS": str(cores)}) == cores  # LAWM_THREADS wins
    assert thread_count({"LAWM_THREADS": str(cores + 7)}) == cores
    with pytest.raises(ValueError, match="LAWM_THREADS='two'"):
        thread_count({"LAWM_THREADS": "two"})
    with pytest.raises(ValueError, match="at least 1"):
        thread_count({"OMP_NUM_THREADS": "0"})


def test_a_stage_process_sets_openmp_before_torch_and_its_threads_from_the_knob():
    code = ("import os\nfrom pipelines.stage import main\nimport torch\n"
            "main(lambda params_file: print(os.environ['GOMP_SPINCOUNT'], torch.get_num_threads()), 'probe', [])")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "LAWM_THREADS": "1"},
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert out == ["3000", "1"]
