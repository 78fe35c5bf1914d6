"""Sweeps on a Dask cluster (simulation/experiments/cluster.py): a real LocalCluster of two worker processes; the
runs go through ``lintas simulate --executor dask --scheduler ADDRESS`` as a user types it, keep the same journal as
the local pool (``--resume`` runs only what it lacks), and a run that fails on a worker is named, with SUMO's own
words (the command then exits 1, as with the local pool)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from clirun import lintas

from simulation.experiments.catalog import DEMO

distributed = pytest.importorskip("distributed", reason="dask.distributed is part of the [sim] install")


@pytest.fixture(scope="module")
def scheduler():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       scheduler_port=0)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def _journal(work):
    lines = (work / "journal.jsonl").read_text().splitlines()
    return [json.loads(ln)["run"] for ln in lines[1:]]


def test_a_sweep_runs_on_the_cluster_and_resumes_from_the_same_journal(tmp_path, scheduler):
    work, out = tmp_path / "w", tmp_path / "runs.json"
    args = ("simulate", str(DEMO), "-p", "maxpressure", "--end", "60", "--executor", "dask", "--scheduler", scheduler,
            "--work-dir", str(work), "--json", str(out), "-q")
    r = lintas(*args, "--seeds", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert [(x["policy"], x["seed"]) for x in _journal(work)] == [("maxpressure", 1)]
    # one more seed: the journal's run is kept, only seed 2 goes to the cluster
    r = lintas(*args, "--seeds", "2", "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 of 2 runs already in" in r.stderr and "running the other 1" in r.stderr
    runs = json.loads(out.read_text())["runs"]
    assert [(x["policy"], x["seed"]) for x in runs] == [("maxpressure", 1), ("maxpressure", 2)]
    assert all(x["vehicles"] > 0 and x["commands_sent"] > 0 for x in runs)
    assert runs[0]["delay_s"] != runs[1]["delay_s"]  # two seeds, two runs
    assert len(_journal(work)) == 2


def test_a_run_that_fails_on_a_worker_is_named_with_sumos_words(tmp_path, scheduler):
    from simulation.experiments.batch import simulate_runs

    city = tmp_path / "city"
    shutil.copytree(DEMO, city, ignore=shutil.ignore_patterns("gtfs", "*.py", "__pycache__"))
    cfg = city / "bunda_kota.sumocfg"
    cfg.write_text(cfg.read_text().replace("<time>", '<time><no-such-option value="1"/>'))
    errors: list[str] = []
    done, interrupted = simulate_runs(city, ["fixed"], 1, out_dir=tmp_path / "w", quiet=True, on_error=errors.append,
                                      executor="dask", scheduler=scheduler)
    assert done == [] and not interrupted
    assert len(errors) == 1 and errors[0].startswith("run fixed seed 1 failed:"), errors
    assert "No option with the name 'no-such-option' exists" in errors[0]


@pytest.mark.parametrize(("executor", "scheduler", "said"), [
    ("dask", None, "--executor dask needs --scheduler tcp://HOST:8786"),
    ("dask", "10.0.0.5:8786", "--scheduler 10.0.0.5:8786: expected tcp://HOST:PORT"),
    ("dask", "tcp://10.0.0.5:99999", "the port must be 1-65535"),
    ("local", "tcp://10.0.0.5:8786", "--scheduler is for --executor dask"),
    ("ray", None, "--executor: unknown executor 'ray' (choose from: local, dask)"),
])
def test_executor_options_are_refused_with_the_option_named(executor, scheduler, said):
    from simulation.experiments.cluster import ClusterError, check_scheduler

    with pytest.raises(ClusterError, match=re.escape(said)):
        check_scheduler(executor, scheduler)


def test_a_bad_executor_option_is_one_line_before_any_run(tmp_path):
    r = lintas("simulate", str(DEMO), "-p", "fixed", "--work-dir", str(tmp_path / "w"), "--executor", "dask")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "--executor dask needs --scheduler" in lines[0], r.stderr
    assert not (tmp_path / "w" / "journal.jsonl").exists()
