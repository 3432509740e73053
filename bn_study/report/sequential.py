"""Judging a report's claims, once (the planned seeds) or in looks (``report.sequential``).

Without ``sequential`` every claim is judged on all its runs and Holm shares α among the claims. With it,
the seeds are taken in looks: the planned seeds first, then ``add`` more per look up to ``max_seeds``.
Look k may spend α_k (the increments of an α-spending function, ``spending.look_alphas``); Holm shares α_k
among the claims still undecided at that look, and a claim decided at a look keeps that verdict. The
grid sweeper asks the same function which claims are still undecided, so it adds seeds to exactly the
conditions the report will judge again. Every look is recomputed from the store: the seeds of look k are
the first n_k seeds in ascending order, which is the order the sweeper adds them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bn_study.report.claims import ClaimResult, correct, evaluate
from bn_study.report.collect import Condition, select
from bn_study.report.spec import ClaimSpec, ReportSpec, SequentialSpec
from bn_study.report.spending import look_alphas
from bn_study.report.stats import ALPHA, INCONCLUSIVE


@dataclass(frozen=True)
class Looks:
    """The looks a sequential study plans: seeds per condition at each, and the α each may spend."""

    sizes: tuple[int, ...]
    alphas: tuple[float, ...]


def planned_looks(seq: SequentialSpec, planned: int) -> Looks:
    sizes = [planned]
    while sizes[-1] < seq.max_seeds:
        sizes.append(min(sizes[-1] + seq.add, seq.max_seeds))
    return Looks(tuple(sizes), tuple(look_alphas(sizes, max(seq.max_seeds, planned), seq.spending)))


def seed_order(conditions: Sequence[Condition]) -> list[int]:
    return sorted({r.seed for c in conditions for r in c.runs if r.seed is not None})


def restricted(conditions: Sequence[Condition], seeds: set[int]) -> list[Condition]:
    return [replace(c, runs=tuple(r for r in c.runs if r.seed in seeds)) for c in conditions]


def claim_conditions(claim: ClaimSpec, conditions: Sequence[Condition]) -> list[Condition]:
    """Every condition a claim's parts read (A and B; for an interaction, under both settings)."""
    found: dict[str, Condition] = {}
    for comp in claim.parts:
        selectors = [comp.a, comp.b]
        if comp.test == "interaction":
            selectors = [{**s, **(side or {})} for side in (comp.under, comp.versus) for s in (comp.a, comp.b)]
        for s in selectors:
            for c in select(conditions, s):
                found.setdefault(c.key, c)
    return list(found.values())


def planned_seeds(conditions: Sequence[Condition]) -> int:
    """The first look's size: the runs of each condition's planned job — those whose ``seeds`` override (none,
    when the experiment file set them) is that of the condition's lowest seed; a look's job names its own."""
    sizes = []
    for c in conditions:
        if not c.runs:
            continue
        first = min(c.runs, key=lambda r: (r.seed if r.seed is not None else -1, r.run_id))
        sizes.append(len({r.seed for r in c.runs if r.choices.get("seeds") == first.choices.get("seeds")}))
    return min(sizes) if sizes else 0


def judge(spec: ReportSpec, conditions: Sequence[Condition], alpha: float = ALPHA) -> list[ClaimResult]:
    """Every claim's result: uncorrected (95 %) and after Holm — within each look when sequential."""
    claims = spec.claims
    if spec.sequential is None or not claims:
        return correct([evaluate(c, conditions) for c in claims], alpha)
    looks = planned_looks(spec.sequential, planned_seeds(conditions))
    order = seed_order(conditions)
    undecided = list(range(len(claims)))
    last: dict[int, ClaimResult] = {}
    for k, (n, a) in enumerate(zip(looks.sizes, looks.alphas), start=1):
        if len(order) < n:
            break
        at_look = restricted(conditions, set(order[:n]))
        # a claim whose conditions did not get this look's seeds (the sweep stopped, or never added them)
        # stays at the look it had
        eligible = [i for i in undecided
                    if all(len(c.runs) >= n for c in claim_conditions(claims[i], at_look))]
        if not eligible:
            break
        for i, r in zip(eligible, correct([evaluate(claims[i], at_look) for i in eligible], a)):
            last[i] = replace(r, look=k, seeds=n)
        undecided = [i for i in undecided if i not in eligible or last[i].corrected == INCONCLUSIVE]
    if not last:  # fewer seeds than the first look needs: judged as they are
        return [replace(r, look=None) for r in correct([evaluate(c, conditions) for c in claims], looks.alphas[0])]
    return [last[i] if i in last else replace(evaluate(claims[i], conditions), look=None) for i in range(len(claims))]


def next_look(spec: ReportSpec, conditions: Sequence[Condition]) -> tuple[list[Condition], list[int]]:
    """What the sweeper adds next: the conditions of claims still undecided whose look can grow, and the
    seeds to add to each (the next ones after every seed used so far); nothing once all are decided or capped."""
    seq = spec.sequential
    if seq is None or not spec.claims:
        return [], []
    looks = planned_looks(seq, planned_seeds(conditions))
    results = judge(spec, conditions)
    grow: dict[str, Condition] = {}
    target = 0
    for claim, r in zip(spec.claims, results):
        if r.corrected != INCONCLUSIVE or r.look is None or r.look >= len(looks.sizes):
            continue
        if seq.claims is not None and claim.id not in seq.claims:  # judged at the seeds it has
            continue
        target = max(target, looks.sizes[r.look])
        for c in claim_conditions(claim, conditions):
            grow.setdefault(c.key, c)
    if not grow:
        return [], []
    order = seed_order(conditions)
    seeds = order[:target]
    seeds += list(range(max(order, default=-1) + 1, max(order, default=-1) + 1 + target - len(seeds)))
    return list(grow.values()), seeds
