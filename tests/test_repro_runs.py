"""`python -m pipelines.repro` (what `make repro` runs) and `dvc exp run --temp` as the MLflow and
Prefect users see them: one parent run with the stages nested, named and tagged flow runs,
progress as log lines, and an experiment's runs in the project's own store."""

import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from lawm import tracking
from lawm.runtime import usable_cores
from pipelines import repro
from pipelines.repro import stage_waves
from tests.conftest import ROOT
from tests.test_dvc import project, run  # noqa: F401  (the fixture: a git + DVC copy with tiny params)
from tests.test_serve import API


def default_store_env(env: dict) -> dict:
    """The project's environment without MLFLOW_TRACKING_URI (runs go to the default store), logging INFO."""
    return {**{k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}, "PREFECT_LOGGING_LEVEL": "INFO"}


def runs_in(repo, stage: str):
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    return client, client.search_runs([experiment.experiment_id], f"tags.stage = '{stage}'")


def test_one_parent_run_per_repro_with_named_tagged_stage_runs(project, prefect_server):  # noqa: F811
    repo, env = project
    env = default_store_env(env)
    done = subprocess.run([sys.executable, "-m", "pipelines.repro", "worlds"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    client, parents = runs_in(repo, "pipeline")
    assert [p.info.run_name for p in parents] == ["dvc repro worlds"] and parents[0].info.status == "FINISHED"
    _, stages = runs_in(repo, "worlds")
    assert len(stages) == 1
    tags = stages[0].data.tags
    assert tags["mlflow.parentRunId"] == parents[0].info.run_id
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head and "git_commit" not in tags

    with API(base_url=prefect_server, timeout=30) as api:
        flow_runs = api.post("/flow_runs/filter", json={"flow_runs": {"name": {"any_": ["worlds"]}}}).json()
    repro_tag = f"repro:{parents[0].info.run_id[:12]}"
    assert any(set(r["tags"]) >= {"worlds", repro_tag} for r in flow_runs), [r["tags"] for r in flow_runs]

    # Not a terminal: progress comes as log lines, not as a bar redrawn with carriage returns.
    output = done.stdout + done.stderr
    assert "\r" not in output
    assert "worlds/wild: 3/3 video" in output, output[-3000:]


def test_a_failed_repro_fails_its_parent_run_and_passes_the_exit_code(project):  # noqa: F811
    repo, env = project
    env = default_store_env(env)
    done = subprocess.run([sys.executable, "-m", "pipelines.repro", "no_such_stage"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    _, parents = runs_in(repo, "pipeline")
    assert [p.info.status for p in parents] == ["FAILED"]


def test_a_temporary_experiment_logs_to_the_projects_store(project):  # noqa: F811
    repo, env = project
    env = default_store_env(env)
    run([sys.executable, "-m", "dvc", "exp", "run", "--temp", "worlds", "-S", "seed=1"], repo, env)
    _, stages = runs_in(repo, "worlds")
    assert len(stages) == 1
    assert f"{os.sep}.dvc{os.sep}tmp{os.sep}exps{os.sep}" in stages[0].data.tags["workdir"]  # ran in DVC's copy
    assert stages[0].info.artifact_uri.startswith((repo / "mlruns").resolve().as_uri())


def test_the_project_root_of_a_dvc_experiment_copy(tmp_path):
    copy = tmp_path / "project" / ".dvc" / "tmp" / "exps" / "tmpabc123"
    assert tracking.project_root(copy) == (tmp_path / "project").resolve()
    assert tracking.project_root(tmp_path / "elsewhere") == (tmp_path / "elsewhere").resolve()


def test_a_queued_regulariser_sweep_shows_in_exp_show_and_mlflow(project):  # noqa: F811
    """The README's sweep: `dvc exp run --queue -S ...` twice, `dvc queue start`, then `dvc exp show`."""
    repo, env = project
    env = default_store_env(env)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["latent_actions"]["variants"], params["controller"]["variants"] = ["sparse"], ["sparse"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    target = "evaluate_latent_actions@sparse"
    run([sys.executable, "-m", "dvc", "repro", target], repo, env)  # the baseline, committed
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline"], repo, env)

    for l1 in (0.05, 0.2):
        run([sys.executable, "-m", "dvc", "exp", "run", "--queue", target, "--name", f"l1-{l1}",
             "-S", f"latent_actions.regularizers.sparse.l1={l1}"], repo, env)
    run([sys.executable, "-m", "dvc", "queue", "start", "-j", "1"], repo, env)
    deadline = time.monotonic() + 600
    while True:
        status = run([sys.executable, "-m", "dvc", "queue", "status"], repo, env)
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        assert time.monotonic() < deadline, status
        time.sleep(3)
    assert status.count("Success") == 2, status

    shown = json.loads(subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo, env=env,
                                      capture_output=True, text=True, timeout=300, check=True).stdout)
    experiments = {exp["name"]: exp["revs"][0]["data"] for entry in shown for exp in entry.get("experiments") or []}
    assert set(experiments) == {"l1-0.05", "l1-0.2"}
    capacity = {}
    for name, data in experiments.items():
        l1 = data["params"]["params.yaml"]["data"]["latent_actions"]["regularizers"]["sparse"]["l1"]
        assert name == f"l1-{l1}"
        metrics = data["metrics"]["data/metrics/evaluate_latent_actions/sparse.json"]["data"]
        capacity[l1] = metrics["capacity_one_step_l1"]
    assert capacity[0.05] != capacity[0.2]  # each experiment's own metrics, not the baseline's twice

    _, evaluations = runs_in(repo, "evaluate_latent_actions")  # the queued runs land in the project's store
    coefficients = sorted(float(r.data.params["regularizer.l1"]) for r in evaluations)
    assert coefficients == [0.01, 0.05, 0.2]  # the baseline's default and the sweep


def test_the_stages_come_in_waves_after_what_they_read():
    waves = stage_waves(str(ROOT))
    wave_of = {stage: i for i, wave in enumerate(waves) for stage in wave}
    assert waves[0] == ["worlds"] and waves[-1] == ["report"]
    variants = [s for s in wave_of if s.startswith("train_latent_actions@")]
    assert len(variants) > 1 and len({wave_of[s] for s in variants}) == 1  # side by side
    assert all(wave_of[s] > wave_of["cache_features"] for s in variants)
    controllers = [s for s in wave_of if s.startswith("fit_controller@")]
    assert min(wave_of[s] for s in controllers) > wave_of[variants[0]]
    assert wave_of["evaluate_planning"] > max(wave_of[s] for s in controllers)


def fake_stages(monkeypatch, fail: str = ""):
    """run_stage replaced by one that records when each stage runs and with how many threads."""
    events, running, lock = [], set(), threading.Lock()

    def run_stage(stage, args, env, output_lock):
        with lock:
            running.add(stage)
            events.append(("start", stage, env["LAWM_THREADS"], len(running)))
        time.sleep(0.05)
        with lock:
            running.discard(stage)
            events.append(("end", stage))
        return 3 if stage == fail else 0

    monkeypatch.setattr(repro, "run_stage", run_stage)
    return events


def test_a_waves_stages_run_side_by_side_with_a_share_of_the_cores(monkeypatch):
    events = fake_stages(monkeypatch)
    env = {**os.environ, "LAWM_THREADS": "2"}
    assert repro.run_waves([["a"], ["b", "c", "d"], ["e"]], jobs=2, args=[], env=env, pending=lambda w: w) == 0
    starts = {e[1]: e for e in events if e[0] == "start"}
    cores = min(2, usable_cores())
    assert starts["a"][2] == starts["e"][2] == str(cores)  # alone in its wave: every core
    assert {starts[s][2] for s in "bcd"} == {str(max(1, cores // 2))}
    assert max(e[3] for e in starts.values()) == 2  # never more than --jobs at once
    order = [e[1] for e in events]
    assert order.index("a") < min(order.index(s) for s in "bcd")  # a wave starts after the last one ended
    assert order.index("e") > max(len(order) - 1 - order[::-1].index(s) for s in "bcd")


def test_after_a_failed_stage_nothing_new_starts_and_its_code_is_returned(monkeypatch):
    events = fake_stages(monkeypatch, fail="b")
    assert repro.run_waves([["a"], ["b", "c"], ["e"]], jobs=1, args=[], env=dict(os.environ),
                           pending=lambda w: w) == 3
    assert [e[1] for e in events if e[0] == "start"] == ["a", "b"]


def test_only_the_changed_stages_of_a_wave_get_a_process(monkeypatch, capsys):
    events = fake_stages(monkeypatch)
    assert repro.run_waves([["a"], ["b", "c"]], jobs=2, args=[], env=dict(os.environ),
                           pending=lambda w: [s for s in w if s != "b"]) == 0
    assert [e[1] for e in events if e[0] == "start"] == ["a", "c"]
    assert "[b] Stage 'b' didn't change, skipping" in capsys.readouterr().out


def test_jobs_come_from_the_knob_and_targets_need_one_job(capsys):
    assert repro.default_jobs({"LAWM_JOBS": "3"}) == 3
    assert repro.default_jobs({}) == 1  # stages side by side only when asked (their bytes depend on threads)
    with pytest.raises(ValueError, match="LAWM_JOBS='many'"):
        repro.default_jobs({"LAWM_JOBS": "many"})
    assert repro.main(["--jobs", "2", "worlds"]) == 2  # before any server or run starts
    assert "use --jobs 1" in capsys.readouterr().err


def test_a_profile_runs_as_an_experiment_named_after_it(project):  # noqa: F811
    """`python -m pipelines.repro --profile FILE`: the pipeline under the profile's params as one
    `dvc exp run`, in one parent MLflow run; a profile with a misspelt key stops before anything runs."""
    repo, env = project
    env = default_store_env(env)
    (repo / "small.yaml").write_text("worlds.wild.videos: 2\nlatent_actions.regularizers.noisy.beta: 0.00005\n")
    (repo / "typo.yaml").write_text("worlds.wild.vidoes: 2\n")
    refused = subprocess.run([sys.executable, "-m", "pipelines.repro", "--profile", "typo.yaml"], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "worlds.wild.vidoes" in refused.stderr
    assert not (repo / "mlflow.db").exists()  # stopped before any run

    out = run([sys.executable, "-m", "pipelines.repro", "--profile", "small.yaml", "worlds"], repo, env)
    assert "Running stage 'worlds'" in out
    shown = json.loads(subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo, env=env,
                                      capture_output=True, text=True, timeout=300, check=True).stdout)
    experiments = {exp["name"]: exp["revs"][0]["data"] for entry in shown for exp in entry.get("experiments") or []}
    params = experiments["small"]["params"]["params.yaml"]["data"]
    assert params["worlds"]["wild"]["videos"] == 2
    assert params["latent_actions"]["regularizers"]["noisy"]["beta"] == 5e-05  # a number, as the stages read it
    assert len(list((repo / "data/worlds/wild").glob("*.mp4"))) == 2  # the experiment's outputs
    _, parents = runs_in(repo, "pipeline")
    assert [p.info.run_name for p in parents] == ["dvc exp run --name small (profile small.yaml) worlds"]
