"""``res.save`` / ``load``: a plain ``.npz`` without pickle that round-trips everything."""

import dataclasses
import gc
import json
import pickle
import warnings

import numpy as np
import pytest

import nutslite as nl
from nutslite.io import META_KEY
from nutslite.models import zoo
from nutslite.progress import Reporter
from nutslite.result import load

# short runs: the sampler's warnings about R-hat, ESS or divergences are expected here
pytestmark = pytest.mark.filterwarnings("ignore::nutslite.diagnostics.SamplingWarning")


class StopAfter(Reporter):
    """Acts as Ctrl-C once every chain has done ``n`` iterations."""

    def __init__(self, n: int) -> None:
        self.n = n

    def update(self, chains):
        if min(ch.done for ch in chains) >= self.n:
            raise KeyboardInterrupt


def assert_same(a, b, where="result"):
    """Recursive equality of saved values: arrays by dtype, shape and value (NaN == NaN)."""
    if isinstance(a, np.ndarray | np.generic):
        assert isinstance(b, type(a)), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, where


@pytest.fixture(scope="module")
def radon_result():
    return nl.sample(nl.models.radon("noncentered"), draws=60, tune=60, chains=2, seed=5,
                     save_warmup=True, progress=False)


def test_round_trip_keeps_everything(radon_result, tmp_path):
    res = radon_result
    path = res.save(tmp_path / "run.npz")
    back = load(path)
    assert set(vars(back)) == set(vars(res)) | {"nutslite_version"}
    for name, value in vars(res).items():
        assert_same(value, getattr(back, name), name)
    assert back.nutslite_version == nl.__version__
    assert back.dims["a"] == ("county",) and back.dim_labels["county"][0] == "AITKIN"
    assert back.warmup_posterior["sigma_b"].shape == (2, 60)
    assert back.sample_stats["diverging"].dtype == np.bool_
    assert repr(back) == repr(res)
    again = load(back.save(tmp_path / "again.npz"))  # a loaded result saves the same way
    for name, value in vars(back).items():
        assert_same(value, getattr(again, name), name)


def test_each_array_is_stored_at_its_own_size(radon_result, tmp_path):
    # radon's variables, and the sample statistics, are views of one block each
    # (nutslite._memory.empty_views), the draws a view of the chains' buffer: a file or a pickle
    # holds each array's values, not its block once per array
    res = radon_result
    path = res.save(tmp_path / "run.npz")
    with np.load(path, allow_pickle=False) as npz:
        for group in ("posterior", "sample_stats"):
            for name, value in getattr(res, group).items():
                assert value.base is not None  # a view, so the check means something
                stored = npz.zip.getinfo(f"{group}/{name}.npy").file_size
                assert value.nbytes <= stored <= value.nbytes + 1024, name
    for value in [*res.posterior.values(), *res.sample_stats.values(), res.unconstrained]:
        assert len(pickle.dumps(value)) <= value.nbytes + 1024


def test_file_is_plain_npz_without_pickle(radon_result, tmp_path):
    path = radon_result.save(tmp_path / "run.npz")
    with np.load(path, allow_pickle=False) as npz:
        files = set(npz.files)
        assert {"unconstrained", "coords", "posterior/mu_a", "sample_stats/lp",
                "warmup/inv_mass_matrix", "divergences/point"} <= files
        assert all(npz[key].dtype != object for key in files)
        assert npz["coords"].dtype.kind == "U" and npz["coords"][0] == "mu_a"
        meta = json.loads(str(npz[META_KEY]))
    assert meta["format"] == "nutslite-result"
    assert meta["fields"]["settings"]["value"]["seed"] == 5


def test_interrupted_result_round_trips(tmp_path):
    res = nl.sample(zoo.eight_schools("noncentered"), draws=100_000, tune=100, chains=2, seed=2,
                    progress=StopAfter(300))
    assert res.interrupted
    back = load(res.save(tmp_path / "stopped.npz"))
    assert back.interrupted is True
    np.testing.assert_array_equal(back.iterations_completed, res.iterations_completed)
    assert back.n_draws == res.n_draws == min(res.iterations_completed) - 100


def test_saves_at_exactly_the_path_given(radon_result, tmp_path):
    path = tmp_path / "run.results"
    radon_result.save(str(path))
    assert path.exists() and not (tmp_path / "run.results.npz").exists()
    assert load(str(path)).model_name == "radon_noncentered"


def test_failed_save_leaves_the_old_file_and_no_debris(radon_result, tmp_path, monkeypatch):
    path = radon_result.save(tmp_path / "run.npz")
    before = path.read_bytes()

    def interrupted_write(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        radon_result.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]


def test_values_that_need_pickle_are_refused(radon_result, tmp_path):
    res = dataclasses.replace(radon_result, constant_data={"f": object()})
    with pytest.raises(TypeError, match="'constant_data/f': unsupported type object"):
        res.save(tmp_path / "run.npz")
    res = dataclasses.replace(radon_result, constant_data={"f": np.array([None, 1])})
    with pytest.raises(TypeError, match="'constant_data/f': object arrays need pickle"):
        res.save(tmp_path / "run.npz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "target, error, message",
    [
        ("missing/run.npz", ValueError, "directory '.*missing' does not exist"),
        (".", ValueError, "output path is empty"),
        ("", ValueError, "output path is empty"),
        ("dir", ValueError, "is a directory"),
        (3, TypeError, "path must be a string"),
    ],
)
def test_bad_output_paths(radon_result, tmp_path, monkeypatch, target, error, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir").mkdir()
    with pytest.raises(error, match=message):
        radon_result.save(target)


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file: '.*nope.npz'"):
        load(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="is a directory"):
        load(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match="is not a readable nutslite result"):
        load(text)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="holds no nutslite metadata"):
        load(other)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        load(single)
    newer = tmp_path / "newer.npz"
    meta = {"format": "nutslite-result", "format_version": 99, "fields": {}}
    np.savez(newer, **{META_KEY: np.array(json.dumps(meta))})
    with pytest.raises(ValueError, match="upgrade nutslite"):
        load(newer)
    unknown = tmp_path / "unknown.npz"
    meta = {"format": "nutslite-result", "format_version": 1, "nutslite_version": "9.9",
            "fields": {"weights": {"value": 1}}}
    np.savez(unknown, **{META_KEY: np.array(json.dumps(meta))})
    with pytest.raises(ValueError, match="does not know: weights; it was written by nutslite 9.9"):
        load(unknown)
    with pytest.raises(TypeError, match="path must be a string"):
        load(None)


def test_a_damaged_archive_is_refused_and_closed(tmp_path):
    """A file that starts as a zip archive and breaks off: the error names it, and the file is
    closed, not left for the garbage collector (np.load leaves a file it opened itself open when
    zipfile rejects it)."""
    damaged = tmp_path / "damaged.npz"
    np.savez(damaged, x=np.zeros(100))
    damaged.write_bytes(damaged.read_bytes()[:60])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="is not a readable nutslite result"):
            load(damaged)
        gc.collect()  # an unclosed file warns when it is collected
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
