"""Smoke tests of the benchmark scripts: the gradient benchmark runs and prints its ratios, and the
side-by-side benchmark refuses to compare runs made with different settings or data."""

from __future__ import annotations

import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)


def test_bench_gradient_quick_prints_ratios(tmp_path, capsys):
    import bench_gradient

    assert bench_gradient.main(["--quick", "--out", str(tmp_path / "gradient")]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("radon_")]
    assert len(rows) == 4  # two parameterizations x two likelihoods
    for line in rows:
        us, us_numpy, ratio = line.split()[2:5]
        assert float(us) > 0 and float(us_numpy) > 0 and ratio.endswith("x")
    assert (tmp_path / "gradient.md").exists() and (tmp_path / "gradient.json").exists()


def _run(sampler: str, **changes):
    settings = {"draws": 100, "tune": 100, "chains": 2, "cores": 2, "seed": 1,
                "target_accept": 0.8, "max_treedepth": 10}
    run = {"sampler": sampler, "settings": settings, "data": {"kind": "minnesota"},
           "data_digest": "abc", "shape_check": {"chains": 2, "draws": 100, "tune": 100}}
    for key, value in changes.items():
        if key in settings:
            run["settings"] = dict(settings, **{key: value})
        else:
            run[key] = value
    return run


def test_bench_radon_refuses_different_settings():
    from bench_radon import SettingsMismatch, check_comparable

    check_comparable([_run("nutslite"), _run("nutpie")])
    with pytest.raises(SettingsMismatch, match="tune"):
        check_comparable([_run("nutslite"), _run("nutpie", tune=200)])
    with pytest.raises(SettingsMismatch, match="different data"):
        check_comparable([_run("nutslite"), _run("pymc", data_digest="other")])
    with pytest.raises(SettingsMismatch, match="asked for"):
        check_comparable([_run("nutslite"),
                          _run("nutpie", shape_check={"chains": 2, "draws": 100, "tune": 50})])
