"""Smoke tests of the benchmark scripts: the gradient benchmark runs and prints its ratios, the
side-by-side benchmark refuses to compare runs made with different settings or data, and the
posteriors and scaling benchmarks' reports and the compile profile's IR count are right on
made-up input, and the compile profile times the imports."""

from __future__ import annotations

import json
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


def _posterior_row(sampler: str, repeat: int, whole_s: float, ess: float, z: float) -> dict:
    return {"posterior": "p", "sampler": sampler, "repeat": repeat, "whole_s": whole_s,
            "import_build_s": 0.5, "compile_s": 1.0, "sampling_s": whole_s / 2,
            "grads": 10_000, "divergences": 0,
            "ess_bulk_min": ess, "ess_bulk_argmin": "x", "rhat_max": 1.0,
            "z": {"x": z, "y": 0.0}, "max_abs_z_mean": abs(z),
            "ess_per_s": ess / whole_s, "ess_per_s_sampling": 2 * ess / whole_s,
            "ess_per_1000_grads": ess / 10.0}


def test_bench_posteriors_report_plumbing(tmp_path):
    """The posteriors benchmark's report, from made-up rows (no sampling): medians over repeats,
    whole-call ratios, the Bonferroni bound over scalars x samplers, goals and agreement, and the
    tables and chart rewritten from the JSON alone."""
    import bench_posteriors as bp

    rows = [_posterior_row("nutslite", 0, 2.0, 400.0, 0.5),
            _posterior_row("nutslite", 1, 4.0, 400.0, 0.5),  # median whole_s 3.0
            _posterior_row("nutpie", 0, 4.0, 400.0, -1.0),
            _posterior_row("pymc", 0, 20.0, 400.0, 5.0)]  # beyond the bound: disagrees
    report = {"meta": {"settings": {"chains": 4, "draws": 1000, "tune": 1000, "cores": 2,
                                    "seed": 1},
                       "machine": "m", "versions": "v", "command": "c", "minutes": 1.0,
                       "load_note": "loaded"},
              "rows": rows}
    agg = bp.aggregate(report)
    assert agg["table"]["p", "nutslite"]["whole_s"] == 3.0
    assert agg["n_tests"] == 6  # two scalars x three samplers
    assert 3.1 < agg["z_bound"] < 3.2  # Phi^-1(1 - 0.01 / 12) = 3.14
    entry = agg["per_posterior"]["p"]
    assert abs(entry["ratio_nutpie"] - 4.0 / 3.0) < 1e-12
    assert abs(entry["ratio_pymc"] - 20.0 / 3.0) < 1e-12
    parts = entry["parts_nutpie"]
    assert abs(parts["ess_per_grad"] * parts["grad_speed"] * parts["sampling_share"]
               - entry["ratio_nutpie"]) < 1e-12
    assert entry["goal_vs_nutpie"] and entry["agrees"] == {"nutslite": True, "nutpie": True,
                                                           "pymc": False}
    out = tmp_path / "posteriors"
    out.with_suffix(".json").write_text(json.dumps(report))
    assert bp.main(["--from-json", "--out", str(out)]) == 0
    md = out.with_suffix(".md").read_text()
    assert "vs nutpie **1.33x** over 1 (goal 3x: **missed**)" in md
    assert "met / met / **missed**" in md
    assert out.with_suffix(".png").stat().st_size > 0


def _scaling_row(sampler: str, scale: int, seed: int, ess_per_s: float, sampling_s: float) -> dict:
    settings = {"draws": 100, "tune": 100, "chains": 2, "cores": 2, "seed": seed,
                "target_accept": 0.8, "max_treedepth": 10}
    return {"sampler": sampler, "scale": scale, "seed": seed, "settings": settings,
            "data": {"n_counties": 85 * scale}, "n_obs": 935 * scale, "dim": 5 + 170 * scale,
            "compile_s": 1.0, "sampling_s": sampling_s, "grads_total": 1000, "grad_us": scale,
            "us_per_grad_in_sampler": 2.0 * scale, "ess_bulk_min": 100.0,
            "ess_bulk_per_s": ess_per_s, "ess_bulk_per_1k_grads": 10.0, "divergences": 0,
            "rhat_max": 1.0, "mean_tree_depth": 3.0, "other_load_during": 0.0}


def test_bench_scaling_reports_each_seed_and_the_median():
    import bench_scaling

    rows = [_scaling_row("nutpie", 1, 1, 10.0, 4.0), _scaling_row("nutslite", 1, 1, 200.0, 0.2),
            _scaling_row("nutpie", 10, 1, 1.0, 40.0), _scaling_row("nutslite", 10, 1, 11.0, 4.0),
            _scaling_row("nutpie", 10, 2, 2.0, 30.0), _scaling_row("nutslite", 10, 2, 26.0, 2.0),
            _scaling_row("nutpie", 10, 3, 1.0, 50.0), _scaling_row("nutslite", 10, 3, 12.0, 5.0)]
    growth = bench_scaling.growth(rows)
    ten = growth["ratios"]["10"]["nutslite/nutpie"]
    assert [x["bulk_ess_per_s"] for x in ten["per_seed"]] == [11.0, 13.0, 12.0]
    assert ten["bulk_ess_per_s"] == 12.0  # the median, not the first seed's or the mean
    assert ten["sampling_time"] == 10.0  # median of 10, 15 and 10
    assert growth["ratios"]["1"]["nutslite/nutpie"]["bulk_ess_per_s"] == 20.0
    # growth relative to 1x uses each scale's median over seeds: 4.0 s of 4, 2 and 5 over 0.2 s
    assert growth["relative"]["nutslite"]["10"]["sampling_s"] == pytest.approx(20.0)
    meta = {"command": "c", "machine": "m", "when": "w", "versions": "v", "scales": [1, 10],
            "seeds": [1, 2, 3], "settings": rows[0]["settings"]}
    text = bench_scaling.markdown({"meta": meta, "runs": rows, "growth": growth})
    assert "seeds 1-3" in text
    assert "- 10x: nutslite (default): 12.00x ESS/s, 10.0x faster (11.00x, 13.00x, 12.00x)" in text


def test_profile_compile_counts_ir_lines_per_demangled_function():
    """``profile_compile.py --ir`` names each function of a module by its dotted name and counts
    its lines and the module's, on a made-up module in the form Numba's optimised IR takes."""
    import profile_compile

    ir = (
        "; ModuleID = 'x'\n"
        "define range(i32 -1, -2) i32 @_ZN8nutslite6engine5chain9run_chainB2v6B62c8tJTI(ptr %0) {\n"
        "entry:\n  ret i32 0\n}\n\n"
        'define i8* @"_ZN7cpython8nutslite6engine5chain9run_chainB2v6"(i8* %0) {\n'
        "entry:\n  %1 = call i32 @f()\n  ret i8* null\n}\n\n"
        "define void @NRT_incref(i8* %0) {\n  ret void\n}\n"
    )
    total, functions = profile_compile.ir_lines(ir)
    assert total == ir.count("\n") == 15
    assert functions == [
        (3, "cpython.nutslite.engine.chain.run_chain"),
        (2, "nutslite.engine.chain.run_chain"),
        (1, "NRT_incref"),
    ]
    assert profile_compile.demangled(
        "_ZN8nutslite19_diagnostic_kernels21_butterflies_compiled12_3clocals_3e10vectorisedB3v1"
    ) == "nutslite._diagnostic_kernels._butterflies_compiled.<locals>.vectorised"


def test_profile_compile_times_the_imports_and_the_help(capsys):
    """``profile_compile.py --imports 1`` times ``import numba``, ``import nutslite`` with its main
    names resolved and ``nutslite --help`` in fresh processes, and their difference."""
    import profile_compile

    profile_compile.main(["--imports", "1"])
    out = capsys.readouterr().out.splitlines()
    seconds = {line.split(" median ")[0].strip(): float(line.split(" median ")[1].split()[0])
               for line in out if " (range " in line}
    numba_s = seconds["import numba"]
    nutslite_s = seconds["import nutslite; nl.sample, nl.models, nl.summary"]
    assert numba_s > 0 and nutslite_s > 0  # (no order: one round of each is noise-bound)
    assert [key for key in seconds if key.endswith("--help (wall)")]
    difference = float(out[-1].split(": ")[1].split()[0])
    # each of the three printed figures is rounded to 1e-3, so they can disagree by 1.5e-3
    assert difference == pytest.approx(nutslite_s - numba_s, abs=1.5e-3 + 1e-9)


def test_bench_radon_warmup_gives_the_odds_of_a_five_seed_median():
    """``five_seed_odds`` counts the 5-seed subsets whose median ratio reaches the target: none
    when every ratio is below it, all when every ratio reaches it, and for ratios 1..20 against
    10.5 the exact share of subsets whose third-smallest ratio exceeds 10 (3 of 5 drawn from the
    10 above), within the Monte Carlo error of 20,000 subsets (five standard errors: a false
    alarm about once in 3 million runs); the report prints the odds from 20 seeds on."""
    from math import comb

    import bench_radon_warmup as brw

    assert brw.five_seed_odds([0.5] * 20, 1.0) == 0.0
    assert brw.five_seed_odds([1.5] * 20, 1.0) == 1.0
    ratios = [float(k) for k in range(1, 21)]
    exact = sum(comb(10, k) * comb(10, 5 - k) for k in range(3, 6)) / comb(20, 5)
    tolerance = 5 * (exact * (1 - exact) / 20_000) ** 0.5
    assert abs(brw.five_seed_odds(ratios, 10.5) - exact) <= tolerance
    runs = []
    for seed in range(1, 21):
        for sampler, value in (("nutslite", 12.0), ("nutpie", 10.0)):
            runs.append({"sampler": sampler, "seed": seed, "ess_per_1k_sampling": value,
                         "ess_per_1k_total": value / 2, "step_size": 0.4, "accept": 0.8,
                         "tree_depth": 4.0, "metric_spread": 0.1})
    report = brw.markdown({"runs": runs})
    assert "ratio of the means 1.200; a median over 5 of these seeds reaches 1.0 in 100%" in report
    assert "reaches 1.2 in 100% of 5-seed subsets" in report
    assert "ratio of the means" not in brw.markdown({"runs": runs[:38]})  # 19 seeds
