"""SBC on a real Dask ``LocalCluster`` of 2 worker processes: the same ranks as in-process, and
no replication lost when a worker dies in the middle of one. Skipped without dask.distributed (the
optional ``dask`` extra)."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import nutslite as nl  # noqa: E402
from nutslite.cli import main  # noqa: E402
from nutslite.distributed import cluster  # noqa: E402
from nutslite.testing import NutsSampler, check_sampler, sbc  # noqa: E402
from nutslite.testing.sbc import simulated_model  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this file

MODEL = "eight_schools_noncentered"
SETTINGS = {"replications": 16, "n_draws": 100, "seed": 11}
SAMPLER = NutsSampler(tune=300)


class DiesOnce:
    """Kills its worker process in the middle of the first replication that calls it (the marker
    file tells a retry that it has already died once), else samples as ``SAMPLER``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __call__(self, model, n_draws, seed):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)  # the worker dies mid-task, as on a lost node
        return SAMPLER(model, n_draws, seed)


@pytest.fixture(scope="module")
def client():
    with cluster(workers=2) as client:
        client.wait_for_workers(2, timeout=60)
        yield client


@pytest.fixture(scope="module")
def in_process():
    return sbc(SAMPLER, MODEL, **SETTINGS)


def test_import_nutslite_does_not_import_dask():
    code = ("import sys, nutslite, nutslite.testing, nutslite.distributed; "
            "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "False"


def test_the_ranks_on_two_workers_equal_the_in_process_ranks(client, in_process):
    on_dask = sbc(SAMPLER, MODEL, executor=client, **SETTINGS)
    assert np.array_equal(on_dask.u, in_process.u)
    assert np.array_equal(on_dask.thinned, in_process.thinned)
    via_executor = sbc(SAMPLER, MODEL, executor=client.get_executor(), batch=5, **SETTINGS)
    assert np.array_equal(via_executor.u, in_process.u)


def test_a_worker_killed_mid_run_loses_no_replication(client, in_process, tmp_path):
    marker = tmp_path / "died"
    seen = []
    result = sbc(DiesOnce(str(marker)), MODEL, executor=client, on_result=seen.append,
                 **SETTINGS)
    assert marker.exists()  # a worker process did die in the middle of a replication
    dead_pid = int(marker.read_text())
    assert dead_pid not in client.run(os.getpid).values()
    assert sorted(rep.index for rep in seen) == list(range(SETTINGS["replications"]))
    assert np.array_equal(result.u, in_process.u)


def test_models_travel_to_the_workers(client):
    """A model, a model with data (its data in the pickle) and a simulated model."""
    conditioned = simulated_model(MODEL).conditioned(np.linspace(-10.0, 30.0, 8))
    for model in (nl.models.radon("noncentered"), conditioned):
        theta = np.full(model.dim, 0.1)
        remote = client.submit(lambda m, t: m.logp(t), model, theta).result()
        assert remote == model.logp(theta)
    assert pickle.loads(pickle.dumps(simulated_model(MODEL))) is simulated_model(MODEL)


def test_check_sampler_fans_out_over_the_workers(client):
    """Two targets and no SBC, to stay quick; the statistics equal the in-process run's."""
    from nutslite.testing import default_targets

    targets = [t for t in default_targets() if t.name in ("log_gamma", "funnel")]
    kwargs = {"n_draws": 1000, "targets": targets, "sbc": False, "seed": 2,
              "raise_on_failure": False}
    local = check_sampler(SAMPLER, **kwargs)
    remote = check_sampler(SAMPLER, executor=client, **kwargs)
    assert [r.statistic for r in remote.results] == [r.statistic for r in local.results]


def test_the_command_line_on_a_local_cluster_writes_the_in_process_ranks(in_process, tmp_path):
    out = tmp_path / "sbc.jsonl"
    argv = ["sbc", MODEL, "--replications", str(SETTINGS["replications"]), "--draws",
            str(SETTINGS["n_draws"]), "--seed", str(SETTINGS["seed"]), "--tune", "300",
            "--workers", "2", "--out", str(out), "--no-progress"]
    assert main(argv) in (0, 1)  # 1 only if a uniformity test failed: not this test's concern
    import json

    records = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    u = np.array([r["u"] for r in sorted(records, key=lambda r: r["index"])])
    assert np.array_equal(u, in_process.u)
