"""Video inspectors for the timeout and crash tests; module level so spawned workers can import them."""

import os
import signal
import time

from lawm.video import inspect_video


def hang_on_marked(path: str, fps: float):
    if "hang" in os.path.basename(path):
        time.sleep(600)
    return inspect_video(path, fps)


def crash_on_marked(path: str, fps: float):
    if "crash" in os.path.basename(path):
        os.kill(os.getpid(), signal.SIGSEGV)
    return inspect_video(path, fps)
