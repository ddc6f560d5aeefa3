"""Build ``data/radon.csv`` (the blog post's Minnesota radon data) from the EPA SRRS2 survey files.

The raw files ``srrs2.dat`` (one row per home) and ``cty.dat`` (county uranium) ship inside the
PyPI wheel ``pymc3==3.11.6`` under ``pymc3/tests/data/``. This script fetches that wheel with
``pip download --no-deps`` (or uses ``--wheel PATH``), prints the sha256 of both inputs, keeps the
Minnesota homes, and writes one row per home:

    idnum, county, county_code, floor, activity, log_radon, log_uranium

with ``log_radon = log(activity + 0.1)`` and ``county_code`` 0..84 in alphabetical order of county
name, as in Gelman & Hill (2007) and Wiecki (2017). It then checks the facts fixed in the project's
API contract (919 homes, 85 counties, 153 first-floor homes, mean log_radon 1.264779, AITKIN = 0,
ST LOUIS = 69, YELLOW MEDICINE = 84) and exits non-zero if any fails.

``data/radon.csv`` is a symbolic link to ``nutslite/data/radon.csv`` so that the installed package
carries the data; writing through the link updates the packaged copy.

Usage::

    python data/build_radon.py                 # fetch the wheel with pip, write data/radon.csv
    python data/build_radon.py --wheel pymc3-3.11.6-py3-none-any.whl --out /tmp/radon.csv
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "pymc3==3.11.6"
MEMBERS = {"srrs2": "pymc3/tests/data/srrs2.dat", "cty": "pymc3/tests/data/cty.dat"}
FACTS = {"rows": 919, "counties": 85, "first_floor": 153, "mean_log_radon": 1.264779}
COUNTY_CODES = {"AITKIN": 0, "ST LOUIS": 69, "YELLOW MEDICINE": 84}
COLUMNS = ["idnum", "county", "county_code", "floor", "activity", "log_radon", "log_uranium"]


def fetch_wheel(directory: Path) -> Path:
    """Download the pymc3 wheel (no dependencies) into ``directory`` and return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "-d", str(directory), WHEEL]
    subprocess.run(cmd, check=True)
    (wheel,) = directory.glob("pymc3-*.whl")
    return wheel


def read_members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {key: zf.read(name) for key, name in MEMBERS.items()}


def build_rows(srrs2: bytes, cty: bytes) -> list[dict[str, object]]:
    """Minnesota homes joined with their county's uranium, sorted as in the survey file."""
    homes = [
        r for r in csv.DictReader(io.StringIO(srrs2.decode("ascii")))
        if r["state"].strip() == "MN"
    ]
    uranium = {
        int(r["stfips"]) * 1000 + int(r["ctfips"]): float(r["Uppm"])
        for r in csv.DictReader(io.StringIO(cty.decode("ascii")))
        if r["st"].strip() == "MN"
    }
    names = sorted({r["county"].strip() for r in homes})
    code = {name: i for i, name in enumerate(names)}
    rows = []
    for r in homes:
        activity = float(r["activity"])
        fips = int(r["stfips"]) * 1000 + int(r["cntyfips"])
        rows.append({
            "idnum": int(r["idnum"]),
            "county": r["county"].strip(),
            "county_code": code[r["county"].strip()],
            "floor": int(r["floor"]),
            "activity": activity,
            "log_radon": math.log(activity + 0.1),
            "log_uranium": math.log(uranium[fips]),
        })
    return rows


def check_facts(rows: list[dict[str, object]]) -> list[str]:
    """Return the facts of the API contract that ``rows`` violate (empty when all hold)."""
    failures = []
    counties = {r["county"]: r["county_code"] for r in rows}
    mean = sum(r["log_radon"] for r in rows) / len(rows)
    observed = {
        "rows": len(rows),
        "counties": len(counties),
        "first_floor": sum(r["floor"] == 1 for r in rows),
    }
    for key, value in observed.items():
        if value != FACTS[key]:
            failures.append(f"{key}: expected {FACTS[key]}, got {value}")
    if round(mean, 6) != FACTS["mean_log_radon"]:
        failures.append(f"mean_log_radon: expected {FACTS['mean_log_radon']}, got {mean:.7f}")
    if sorted(counties, key=counties.get) != sorted(counties):
        failures.append("county_code is not alphabetical")
    for name, expected in COUNTY_CODES.items():
        if counties.get(name) != expected:
            failures.append(f"county_code[{name}]: expected {expected}, got {counties.get(name)}")
    if {r["floor"] for r in rows} != {0, 1}:
        failures.append("floor takes values other than 0 and 1")
    return failures


def write_csv(rows: list[dict[str, object]], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="use this pymc3 wheel instead of downloading it")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("radon.csv"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        raw = read_members(wheel)
    for key, name in MEMBERS.items():
        print(f"sha256 {hashlib.sha256(raw[key]).hexdigest()}  {name}")

    rows = build_rows(raw["srrs2"], raw["cty"])
    failures = check_facts(rows)
    for failure in failures:
        print(f"FACT FAILED  {failure}")
    if failures:
        return 1
    write_csv(rows, args.out)
    print(f"wrote {args.out}: {len(rows)} homes, all facts of the API contract hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
