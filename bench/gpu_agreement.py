"""Do a study's final metrics on one machine agree with another's? Two sets of reports, compared.

Reads the "Final metrics" table of ``<dir>/<study>/README.md`` (what ``python -m bn_study.report``
writes: ``mean ± 95 % CI`` per condition and metric) from both sides — on the GPU check, the reports of
its own runs against the CPU reports committed in ``reports/`` — and says, per cell, whether the two
means differ by no more than the 95 % interval of their difference, ``sqrt(ci_a² + ci_b²)``: what the
seed-to-seed spread alone allows. A study or condition missing on one side is listed, not compared.

    python bench/gpu_agreement.py --gpu /tmp/gpu/reports --cpu reports [--markdown agreement.md]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

CELL = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*±\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Cell:
    mean: float
    ci: float


def final_metrics(readme: Path) -> dict[tuple[str, str], Cell]:
    """(condition, metric column) → mean ± CI, from the report's "Final metrics" table."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index("## Final metrics")
    except ValueError:
        return {}
    rows: list[list[str]] = []
    for ln in lines[start + 1:]:
        if ln.startswith("## "):
            break
        if ln.startswith("|"):
            rows.append([c.strip() for c in ln.strip().strip("|").split("|")])
    if len(rows) < 3:
        return {}
    header, body = rows[0], rows[2:]
    cells: dict[tuple[str, str], Cell] = {}
    for row in body:
        for column, text in zip(header[1:], row[1:]):
            m = CELL.match(text)
            if m:
                cells[(row[0], column.split(" (")[0])] = Cell(float(m.group(1)), float(m.group(2)))
    return cells


def compare(gpu_dir: Path, cpu_dir: Path) -> tuple[list[tuple[str, str, str, Cell, Cell, bool]], list[str]]:
    rows, notes = [], []
    for readme in sorted(gpu_dir.glob("*/README.md")):
        study = readme.parent.name
        cpu_readme = cpu_dir / study / "README.md"
        if not cpu_readme.is_file():
            notes.append(f"{study}: no CPU report at {cpu_readme}")
            continue
        gpu, cpu = final_metrics(readme), final_metrics(cpu_readme)
        for key in sorted(set(gpu) | set(cpu)):
            if key not in gpu or key not in cpu:
                notes.append(f"{study}: {key[0]} / {key[1]} only on the {'GPU' if key in gpu else 'CPU'}")
                continue
            a, b = gpu[key], cpu[key]
            rows.append((study, key[0], key[1], a, b, abs(a.mean - b.mean) <= math.hypot(a.ci, b.ci)))
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", type=Path, required=True, help="reports of the runs to check")
    parser.add_argument("--cpu", type=Path, required=True, help="reports to check them against")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    rows, notes = compare(args.gpu, args.cpu)
    out = ["| study | condition | metric | GPU mean ± CI | CPU mean ± CI | agree |", "|---|---|---|---|---|---|"]
    out += [f"| {s} | {c} | {m} | {a.mean:g} ± {a.ci:g} | {b.mean:g} ± {b.ci:g} | {'yes' if ok else '**no**'} |"
            for s, c, m, a, b, ok in rows]
    agreed = sum(ok for *_, ok in rows)
    out.append(f"\n{agreed} of {len(rows)} cells agree within the seed-to-seed spread")
    out += [f"- {n}" for n in notes]
    text = "\n".join(out)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return 0 if rows and agreed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
