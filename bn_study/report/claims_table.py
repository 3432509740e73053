"""The claims section of a report: one row per claim (or part) with the arms, the effect and its interval, the
analysis used, the Holm verdict with its p-values and sequential look, and the uncorrected verdict beside it."""

from __future__ import annotations

from collections.abc import Sequence

from bn_study.report.cells import cell, mean_ci, number, signed, verdict_text
from bn_study.report.claims import ClaimResult, PartResult
from bn_study.report.collect import Condition
from bn_study.report.spec import Comparison, ReportSpec
from bn_study.report.stats import PAIRED, Summary


def _censored_effect(part: PartResult) -> str | None:
    """A ``faster`` effect with runs that never reached the threshold: a bound, never an interval that looks
    exact. Runs of B that never got there can only hide how slow B is (A's lead can only be larger): a lower
    bound; runs of A, how slow A is: an upper bound; runs of both: no bound at all."""
    ca, cb = part.censored
    if not (ca or cb) or part.effect is None:
        return None
    comp, e = part.comparison, part.effect
    unit, m = comp.unit(), comp.quantity()
    if ca and cb:
        return (f"not measured: runs of both arms never reached {comp.threshold:g} (A: {ca}, B: {cb}), so the "
                "difference has no bound either way")
    lo, hi = ("(", ")") if e.open_ends else ("[", "]")
    if cb:
        return (f"≥ {signed(m, e.estimate)}{unit} {lo}{signed(m, e.low)}, +∞): a lower bound, {cb} of B's runs never "
                f"got there{_grain_note(part)}")
    return (f"≤ {signed(m, e.estimate)}{unit} (−∞, {signed(m, e.high)}{hi}: an upper bound, {ca} of A's runs never "
            f"got there{_grain_note(part)}")


def _grain_note(part: PartResult) -> str:
    """Why a ``faster`` or ``wider_range`` interval is wider than the seeds' spread: a time read at an epoch's
    end is known only to that epoch, a range on a grid only to its spacing."""
    e, comp = part.effect, part.comparison
    if e is None or not e.open_ends:
        return ""
    m = comp.quantity()
    if comp.test == "wider_range":
        return (f"; the grid counts each range's edges midway between its values, so a range is known only to "
                f"the grid's spacing: widened by {number(m, e.slack[0])} on each side, ends excluded")
    return (f"; runs are read at epoch ends, so each time is known only to its epoch: widened by "
            f"{number(m, e.slack[0])} below and {number(m, e.slack[1])} above, ends excluded")


def effect_cell(part: PartResult) -> str:
    comp = part.comparison
    if part.effect is None:
        return "—"
    bound = _censored_effect(part)
    if bound is not None:
        return bound
    unit, m = comp.unit(), comp.quantity()
    e = part.effect
    lo, hi = ("(", ")") if e.open_ends else ("[", "]")
    text = f"{signed(m, e.estimate)}{unit} {lo}{signed(m, e.low)}, {signed(m, e.high)}{hi}{_grain_note(part)}"
    rel = part.relative_error
    if rel is not None:
        text += f"; errors {-rel[0] * 100:+.0f} % vs B [{-rel[2] * 100:+.0f}, {-rel[1] * 100:+.0f}]"
    if comp.test == "interaction":
        gains = [g for g in part.gains]
        text += "".join(f"; gain {w}: {signed(m, g.estimate)}{unit}" for w, g in zip(("under", "versus"), gains) if g)
    return text


def analysis_text(part: PartResult) -> str:
    e = part.effect
    if part.comparison.analysis == PAIRED:
        return f"paired t over {e.n} seeds" if e else "paired t"
    return "Welch (unpaired)"


def _arm(cond: Condition | None, s: Summary | None, comp: Comparison, sampling: float | None = None,
         second: Condition | None = None, censored: int = 0) -> str:
    if cond is None:
        return "(not in this sweep)"
    m = comp.quantity()
    se = f"; one run's test-set SE ± {sampling:.2f} pp" if sampling is not None else ""
    text = f"{cond.label}: {mean_ci(m, s)} (n={s.n if s else 0}{se})"
    if censored and s is not None:  # a mean of runs some of which never got there: only a lower bound
        every = censored == s.n and not s.sd and m == "epochs"
        shown = f">{s.mean - 1:.0f}" if every else f"≥ {number(m, s.mean)}"
        text = (f"{cond.label}: {shown} (n={s.n}; {censored} never reached {comp.threshold:g}"
                f"{'' if every else ', counted one epoch past their end'})")
    if second is not None:
        text += f"; versus {second.label}"
    return text


def _claimed(comp: Comparison) -> str:
    names = {"better": "A better than B", "faster": "A reaches it sooner",
             "not_better": "A not better than B", "equivalent": "A ≈ B (A as good as B)",
             "interaction": "A's gain over B larger under the first setting",
             "wider_range": "A good over a wider range than B"}
    return f"{names[comp.test]}: effect {comp.region().describe(comp.unit())}"


def _decision(res: ClaimResult) -> str:
    """How the headline verdict was reached: Holm's p (and the sequential look)."""
    text = f"p {res.p:.2g}, Holm p {res.adjusted_p:.2g} vs α {res.alpha:.3g}"
    if res.look is not None:
        text += f"; look {res.look}, {res.seeds} seeds per condition"
    return text


def sequential_line(spec: ReportSpec, claims: Sequence[ClaimResult]) -> list[str]:
    seq = spec.sequential
    if seq is None or not claims:
        return []
    from bn_study.report.sequential import planned_looks

    first = min((c.seeds for c in claims if c.seeds), default=None)
    if first is None:
        return ["Sequential seeds are configured, but no look had the planned seeds; judged as they are.", ""]
    looks = planned_looks(seq, first)
    taken = max(c.look or 0 for c in claims)
    plan = ", ".join(f"{n} seeds (α {a:.3g})" for n, a in zip(looks.sizes, looks.alphas))
    return [f"Sequential seeds ({seq.spending} spending, +{seq.add} per look, cap {seq.max_seeds}): looks planned at "
            f"{plan}; looks taken: {taken} of {len(looks.sizes)}. Each claim's verdict is from the look that decided "
            "it, or its last look." + _growing(spec, claims), ""]


def _growing(spec: ReportSpec, claims: Sequence[ClaimResult]) -> str:
    ids = spec.sequential.claims if spec.sequential else None
    if ids is None:
        return ""
    numbers = [str(i) for i, c in enumerate(claims, 1) if c.spec.id in ids]
    return (f" Only claim{'s' if len(numbers) > 1 else ''} {', '.join(numbers)} may add seeds "
            "(`report.sequential.claims`); the others are judged at the planned seeds.")


def claims_table(results: Sequence[ClaimResult]) -> list[str]:
    if not results:
        return ["No claims are configured for this experiment (`report.claims` in its conf file)."]
    out = ["| claim | measured · analysis | A (mean ± 95 % CI) | B (mean ± 95 % CI) "
           "| effect: A improves on B by [95 % CI] | claimed region | verdict (Holm) | uncorrected (95 %) |",
           "|---|---|---|---|---|---|---|---|"]
    notes: list[str] = []
    for i, res in enumerate(results, start=1):
        several = len(res.parts) > 1
        decided = f"{verdict_text(res.corrected)}<br>{cell(_decision(res))}"
        if several:
            out.append(f"| **{i}. {cell(res.spec.text)}** | all of the parts below | | | | | {decided} "
                       f"| {res.verdict} |")
        for j, part in enumerate(res.parts, start=1):
            name = f"↳ {i}.{j}" if several else f"**{i}. {cell(res.spec.text)}**"
            comp = part.comparison
            marks = ""
            for note in part.notes:
                notes.append(note)
                marks += f" [^{len(notes)}]"
            se = part.sampling_se() or (None, None)
            shown = "" if several else decided
            out.append(f"| {name}{marks} | {cell(comp.measured())} · {analysis_text(part)} "
                       f"| {cell(_arm(part.a, part.a_summary, comp, se[0], part.a2, part.censored[0]))} "
                       f"| {cell(_arm(part.b, part.b_summary, comp, se[1], part.b2, part.censored[1]))} "
                       f"| {effect_cell(part)} "
                       f"| {cell(_claimed(comp))} | {shown or verdict_text(part.verdict)} | {part.verdict} |")
    sources = [(i, r.spec.source) for i, r in enumerate(results, start=1) if r.spec.source]
    if sources:
        out += ["", "What the source says:", ""]
        out += [f"{i}. {src}" for i, src in sources]
    if notes:
        out += [""] + [f"[^{k}]: {n}" for k, n in enumerate(notes, start=1)]
    return out
