"""``report.compare_with: OTHER``: this study's claims judged on OTHER's latest sweep as well, shown side by
side with this one's — the same question asked of two datasets (or any two sweeps of the same conditions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bn_study.data.catalog import DATASETS
from bn_study.report.cells import cell, mean_ci, verdict_text
from bn_study.report.claims import ClaimResult
from bn_study.report.collect import Condition, Study
from bn_study.report.claims_table import effect_cell
from bn_study.report.stats import summarize

FINAL_METRIC = "test_acc"


@dataclass(frozen=True)
class Side:
    """One study as a column: a name for the header, its conditions and its claims' results."""

    name: str
    study: Study
    conditions: Sequence[Condition]
    claims: Sequence[ClaimResult]


def side_name(study: Study) -> str:
    data = ", ".join(DATASETS[d].title if d in DATASETS else d for d in study.datasets) or "data not recorded"
    return f"`{study.experiment}` ({data})"


def side_by_side(this: Side, other: Side) -> list[str]:
    """The section's lines: a claims table and a final-accuracy table, this study first."""
    p = other.study.parent
    out = [f"The same claims, judged on {other.name}: its latest sweep `{p.run_id}` ({len(other.study.runs)} runs, "
           f"report `reports/{other.study.experiment}`), with the same statistics.", "",
           f"| claim | {cell(this.name)}: effect [95 % CI] | verdict (Holm; a part: uncorrected) "
           f"| {cell(other.name)}: effect [95 % CI] | verdict (Holm; a part: uncorrected) |",
           "|---|---|---|---|---|"]
    for i, (mine, theirs) in enumerate(zip(this.claims, other.claims), start=1):
        several = len(mine.parts) > 1
        if several:
            out.append(f"| **{i}. {cell(mine.spec.text)}** | all of the parts below | {verdict_text(mine.corrected)} "
                       f"| | {verdict_text(theirs.corrected)} |")
        for j, (a, b) in enumerate(zip(mine.parts, theirs.parts), start=1):
            name = f"↳ {i}.{j}" if several else f"**{i}. {cell(mine.spec.text)}**"
            va, vb = (a.verdict, b.verdict) if several else (mine.corrected, theirs.corrected)
            out.append(f"| {name} | {effect_cell(a)} | {verdict_text(va)} | {effect_cell(b)} | {verdict_text(vb)} |")
    theirs_by_label = {c.label: c for c in other.conditions}
    out += ["", f"| condition | {cell(this.name)}: {FINAL_METRIC}, last epoch (mean ± 95 % CI) "
                f"| {cell(other.name)}: {FINAL_METRIC}, last epoch (mean ± 95 % CI) |", "|---|---|---|"]
    for c in this.conditions:
        twin = theirs_by_label.get(c.label)
        there = mean_ci(FINAL_METRIC, summarize(twin.values(FINAL_METRIC))) if twin else "(not in that sweep)"
        out.append(f"| {cell(c.label)} | {mean_ci(FINAL_METRIC, summarize(c.values(FINAL_METRIC)))} | {there} |")
    return out
