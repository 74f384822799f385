"""Thread settings: every torch process takes its threads from the cores it may use."""

import os
import subprocess
import sys

import pytest
import torch

from lawm.runtime import compute_dtype, thread_count, usable_cores
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


def test_a_stage_process_exits_without_teardown_yet_joins_threads_runs_exit_handlers_and_flushes():
    code = ("import atexit, threading, time\n"
            "from pipelines.stage import exit_without_teardown, is_stage_process\n"
            "threading.Thread(target=lambda: (time.sleep(0.3), print('thread'))).start()\n"
            "atexit.register(print, 'handler')\n"
            "print(is_stage_process(), end=' ')\n"  # buffered: lost unless flushed before leaving
            "exit_without_teardown(3)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout block-buffered into the pipe
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split() == ["False", "thread", "handler"]  # `-c` is not a stage's `python -m pipelines.<stage>`


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="reads the CPU's flags from Linux's /proc/cpuinfo")
def test_auto_precision_is_bfloat16_exactly_on_cpus_with_bfloat16_units():
    flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    has_units = "amx_tile" in flags or "avx512_bf16" in flags
    cpu = torch.device("cpu")
    assert compute_dtype("auto", cpu) == (torch.bfloat16 if has_units else torch.float32)
    assert compute_dtype("float32", cpu) == torch.float32 and compute_dtype("bfloat16", cpu) == torch.bfloat16
