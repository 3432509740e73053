"""What a skeptical reviewer asks of a verdict, each rule on a synthetic MLflow store written through the real
API (one child run per seed, exact per-seed values) and reported by ``python -m bn_study.report`` from a user
config dir: paired vs Welch, Holm across claims, failed runs put back at the worst value, contradicted vs
exceeded, effect sizes beside pp, interaction claims, published numbers, and the sequential rule's error rate."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from scipy import stats as sps

from bn_study.report.__main__ import main
from bn_study.report.collect import Condition, RunRecord, override_choices
from bn_study.report.load import parse_spec
from bn_study.report.sequential import judge
from bn_study.report.stats import (CONTRADICTED, EXCEEDED, INCONCLUSIVE, PAIRED, SUPPORTED, Difference, Region,
                                   binomial_se, holm, p_values, verdict)
from bn_study.report.spending import look_alphas, spent

SEEDS = range(5)
SEED_EFFECT = (-3.0, 1.0, -1.0, 2.0, 1.0)  # what each seed adds to every condition (shared init and order)


class Store:
    """A sweep per call: condition → per-seed values of val_acc at epoch 1 (in %), FAILED where the value is None."""

    def __init__(self, root: Path) -> None:
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.root = root

    def sweep(self, experiment: str, conditions: dict[str, list[float | None]]) -> str:
        found = self.client.get_experiment_by_name(experiment)
        exp = found.experiment_id if found else self.client.create_experiment(
            experiment, artifact_location=(self.root / "mlruns").as_uri())
        parent = self.client.create_run(exp, run_name="multirun", tags={
            "role": "multirun parent", "overrides": f"+experiment={experiment}"}).info.run_id
        for condition, values in conditions.items():
            for seed, value in enumerate(values):
                run = self.client.create_run(exp, run_name=f"{condition} seed={seed}", tags={
                    "condition": condition, "seed": str(seed), "mlflow.parentRunId": parent,
                    "overrides": f"{condition} +experiment={experiment}"}).info.run_id
                metrics = [] if value is None else [Metric("val_acc", value / 100, 0, 1),
                                                    Metric("train_loss", 1 - value / 100, 0, 1)]
                self.client.log_batch(run, metrics=metrics, params=[Param("seed", str(seed)), Param("data.val", "test")])
                self.client.set_terminated(run, "FAILED" if value is None else "FINISHED")
        self.client.set_terminated(parent, "FINISHED")
        return parent

    def report(self, tmp: Path, experiment: str, section: dict) -> str:
        conf = tmp / "conf"
        (conf / "experiment").mkdir(parents=True, exist_ok=True)
        (conf / "experiment" / f"{experiment}.yaml").write_text(yaml.safe_dump({"report": section}))
        assert main([experiment, "--config-dir", str(conf), "--tracking-uri", self.uri, "--out", str(tmp / "out"),
                     "--no-artifacts"]) == 0
        return (tmp / "out" / experiment / "README.md").read_text()


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path)


def shared(mean: float, spread: float = 1.0, own: tuple[float, ...] = (0.0,) * 5) -> list[float]:
    """Five seeds: a mean, each seed's shared effect times ``spread``, plus this condition's own noise."""
    return [mean + spread * e + o for e, o in zip(SEED_EFFECT, own)]


def claim(cid: str, a: str, b: str, **kw) -> dict:
    return {"id": cid, "text": cid, "a": {"norm": a}, "b": {"norm": b}, "metric": "val_acc", "epoch": 1,
            "test": "better", **kw}


def row(readme: str, cid: str) -> str:
    return next(line for line in readme.splitlines() if line.startswith("| **") and f". {cid}**" in line)


def verdicts(readme: str) -> str:
    return next(line for line in readme.splitlines() if line.startswith("**Verdicts:**"))


# --- 1. paired analysis -------------------------------------------------------------------------------------

def test_paired_analysis_uses_the_seeds_both_arms_ran_and_says_so(store, tmp_path):
    own = (0.1, -0.1, 0.05, 0.0, -0.05)
    a, b = shared(90.5, own=own), shared(90.0)
    store.sweep("pairs", {"norm=bn1": a, "norm=none": b})
    section = {"claims": [claim("unpaired", "bn1", "none"), claim("paired", "bn1", "none", analysis="paired")]}
    readme = store.report(tmp_path, "pairs", section)
    welch_row, paired_row = row(readme, "unpaired"), row(readme, "paired")
    assert "Welch (unpaired)" in welch_row and "paired t over 5 seeds" in paired_row
    # the seeds' shared effect (±3 pp) swamps a 0.5 pp gain between arms, not within a seed
    ref = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert f"+0.50 pp [{ref.low:+.2f}, {ref.high:+.2f}]" in paired_row and "**supported**" in paired_row
    welch = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert f"+0.50 pp [{welch.low:+.2f}, {welch.high:+.2f}]" in welch_row and "**inconclusive**" in welch_row


def test_paired_drops_a_seed_that_failed_in_one_arm(store, tmp_path):
    a = shared(91.0)
    a[2] = None
    store.sweep("pairs", {"norm=bn1": a, "norm=none": shared(90.0)})
    readme = store.report(tmp_path, "pairs", {"claims": [claim("c", "bn1", "none", analysis="paired")]})
    assert "paired t over 4 seeds" in row(readme, "c")


# --- 2. Holm ------------------------------------------------------------------------------------------------

def _with_p(p: float, mean_b: float = 80.0) -> tuple[list[float], list[float]]:
    """Two arms whose paired t-test has exactly this two-sided p (differences δ + k·σ, k = −2..2)."""
    sigma = 0.4
    delta = sps.t.isf(p / 2, 4) * sigma / math.sqrt(2)  # se of the mean difference = σ·√2.5/√5
    b = shared(mean_b)
    return [x + delta + k * sigma for x, k in zip(b, (-2, -1, 0, 1, 2))], b


def test_holm_judges_the_kth_smallest_p_at_alpha_over_m_minus_k_plus_1(store, tmp_path):
    ps = (0.012, 0.03, 0.04)
    arms = {}
    for i, p in enumerate(ps):
        arms[f"norm=a{i}"], arms[f"norm=b{i}"] = _with_p(p, 70.0 + 5 * i)
    store.sweep("holm", arms)
    section = {"analysis": "paired", "claims": [claim(f"c{i}", f"a{i}", f"b{i}") for i in range(3)]}
    readme = store.report(tmp_path, "holm", section)
    # uncorrected every p < 0.05; Holm: 0.012 < 0.05/3 holds, 0.03 > 0.05/2 stops the procedure
    assert verdicts(readme) == "**Verdicts:** claims (Holm): 1 supported · 2 inconclusive (uncorrected: 3 supported)"
    adjusted = holm(list(ps))
    assert adjusted == pytest.approx([0.036, 0.06, 0.06])
    for i, (p, adj) in enumerate(zip(ps, adjusted)):
        r = row(readme, f"c{i}")
        assert f"p {p:.2g}, Holm p {adj:.2g} vs α 0.05" in r
        assert r.rstrip(" |").endswith("supported")  # the uncorrected column
    assert "**supported**" in row(readme, "c0") and "**inconclusive**" in row(readme, "c1")


def test_holm_adjusted_p_values_by_hand():
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.5]) == [0.5] and holm([]) == []
    assert holm([0.02, 0.02]) == pytest.approx([0.04, 0.04])


# --- 3. failures counted --------------------------------------------------------------------------------------

def test_a_verdict_that_needs_the_failures_dropped_says_so(store, tmp_path):
    a = shared(95.0)
    a[3] = a[4] = None  # the fast arm diverged twice
    store.sweep("fails", {"norm=bn1": a, "norm=none": shared(90.0)})
    readme = store.report(tmp_path, "fails", {"claims": [claim("c", "bn1", "none")]})
    assert "**supported**" in row(readme, "c")
    assert ("this verdict depends on leaving out 2 failed run(s): counted at chance accuracy, it would be "
            "inconclusive") in readme
    kept = [x for x in a if x is not None]
    with_fails = kept + [10.0, 10.0]
    mean, half = sum(with_fails) / 5, sps.t.ppf(0.975, 4) * sps.tstd(with_fails) / math.sqrt(5)
    assert f"- bn1: val_acc {sum(kept) / 3:.2f} ± " in readme.replace("norm=bn1", "bn1")
    assert f"{mean:.2f} ± {half:.2f} with its failed runs at 10.00" in readme


def test_failures_that_change_nothing_add_no_note(store, tmp_path):
    a = shared(99.0, spread=0.1)
    a[4] = None
    store.sweep("fails", {"norm=bn1": a, "norm=none": shared(20.0, spread=0.1)})
    readme = store.report(tmp_path, "fails", {"claims": [claim("c", "bn1", "none")]})
    assert "**supported**" in row(readme, "c") and "depends on leaving out" not in readme
    assert "with its failed runs at 10.00" in readme  # the sensitivity line is there all the same


# --- 4. wording -----------------------------------------------------------------------------------------------

def test_contradicted_and_exceeded_are_told_apart_and_counted_apart(store, tmp_path):
    store.sweep("words", {"norm=adam": shared(97.0), "norm=bn1": shared(94.0), "norm=none": shared(80.0)})
    section = {"analysis": "paired", "claims": [
        claim("matches", "adam", "bn1", test="equivalent", margin=0.5),  # adam is clearly better: exceeded
        claim("little", "bn1", "none", max_effect=5),  # 14 pp is not "a little": exceeded
        claim("helps", "none", "bn1"),  # none is worse: contradicted
        claim("not_better", "adam", "bn1", test="not_better", margin=0.5),  # adam IS better: contradicted
    ]}
    readme = store.report(tmp_path, "words", section)
    assert "**exceeded**" in row(readme, "matches") and "**exceeded**" in row(readme, "little")
    assert "**contradicted**" in row(readme, "helps") and "**contradicted**" in row(readme, "not_better")
    assert verdicts(readme) == "**Verdicts:** claims (Holm): 2 contradicted · 2 exceeded"
    assert "not supported" not in readme


# --- 5. effect sizes --------------------------------------------------------------------------------------------

def test_relative_error_reduction_and_the_test_sets_own_error(store, tmp_path):
    store.sweep("sizes", {"norm=bn1": shared(96.44, spread=0.05), "norm=none": shared(94.74, spread=0.05)})
    readme = store.report(tmp_path, "sizes", {"claims": [claim("c", "bn1", "none", analysis="paired")]})
    r = row(readme, "c")
    assert "+1.70 pp [+1.70, +1.70]" in r
    assert "errors -32 % vs B [-32, -32]" in r  # 5.26 % → 3.56 % errors: a third fewer
    se_a, se_b = binomial_se(96.44, 10_000), binomial_se(94.74, 10_000)
    assert (round(se_a, 2), round(se_b, 2)) == (0.19, 0.22)
    assert f"one run's test-set SE ± {se_a:.2f} pp" in r and f"one run's test-set SE ± {se_b:.2f} pp" in r


# --- 6. interaction -------------------------------------------------------------------------------------------

def test_the_gain_under_one_setting_minus_under_another(store, tmp_path):
    noise = (0.3, -0.2, 0.1, -0.4, 0.2)
    cells = {"act=sigmoid norm=bn1": shared(92.0, own=noise), "act=sigmoid norm=none": shared(82.0),
             "act=relu norm=bn1": shared(95.0), "act=relu norm=none": shared(94.0, own=noise[::-1])}
    store.sweep("inter", cells)
    section = {"claims": [
        {"id": "bigger", "text": "bigger", "test": "interaction", "a": {"norm": "bn1"}, "b": {"norm": "none"},
         "under": {"act": "sigmoid"}, "versus": {"act": "relu"}, "metric": "val_acc", "epoch": 1, "analysis": "paired"},
        {"id": "welch", "text": "welch", "test": "interaction", "a": {"norm": "bn1"}, "b": {"norm": "none"},
         "under": {"act": "sigmoid"}, "versus": {"act": "relu"}, "metric": "val_acc", "epoch": 1, "min_effect": 8.5}]}
    readme = store.report(tmp_path, "inter", section)
    per_seed = [(sb - sn) - (rb - rn) for sb, sn, rb, rn in zip(*cells.values())]
    ref = sps.ttest_1samp(per_seed, 0).confidence_interval(0.95)
    r = row(readme, "bigger")
    assert f"+9.00 pp [{ref.low:+.2f}, {ref.high:+.2f}]" in r and "**supported**" in r
    assert "gain under: +10.00 pp; gain versus: +1.00 pp" in r
    # Welch over four independent groups: the shared seed effect (sd ≈ 2) widens it past 8.5
    terms = [(1, cells["act=sigmoid norm=bn1"]), (-1, cells["act=sigmoid norm=none"]),
             (-1, cells["act=relu norm=bn1"]), (1, cells["act=relu norm=none"])]
    var = [c * c * sps.tvar(x) / 5 for c, x in terms]
    df = sum(var) ** 2 / sum(v * v / 4 for v in var)
    half = sps.t.ppf(0.975, df) * math.sqrt(sum(var))
    assert f"+9.00 pp [{9 - half:+.2f}, {9 + half:+.2f}]" in row(readme, "welch")
    assert "**inconclusive**" in row(readme, "welch")


# --- 8. published numbers ---------------------------------------------------------------------------------------

def test_published_numbers_agree_only_inside_the_rounding_band(store, tmp_path):
    store.sweep("pub", {"norm=tight": shared(87.1, spread=0.05), "norm=loose": shared(87.0, spread=0.6)})
    section = {"published": {"metric": "val_acc", "rounding": 1},
               "conditions": [{"select": {"norm": "tight"}, "published": 87}, {"select": {"norm": "loose"}, "published": 87}]}
    readme = store.report(tmp_path, "pub", section)
    assert "published numbers: 1 agree · 1 not distinguishable" in verdicts(readme)
    loose = next(ln for ln in readme.splitlines() if ln.startswith("| norm=loose | 87 |"))
    assert "not distinguishable: inside our mean's 95 % CI, but the CI is wider than the rounding band" in loose


# --- 7. sequential seeds: the error rate over looks ---------------------------------------------------------------

def _null_study(rng: random.Random, claims: int, seeds: int) -> list[Condition]:
    out = []
    for i in range(claims):
        for arm in ("a", "b"):
            key = f"norm={arm}{i}"
            # the sweeper's jobs: seeds 0-4 planned, then 5 at a time (each run's ``seeds`` param)
            runs = tuple(RunRecord(f"{key}-{s}", key, {**override_choices(key), "seeds": str(list(range(s - s % 5, s - s % 5 + 5)))},
                                   s, "FINISHED", None, {"val_acc": {1: 90.0 + rng.gauss(0.0, 1.0)}}) for s in range(seeds))
            out.append(Condition(key, key, override_choices(key), runs))
    return out


def _error_rate(section: dict, studies: int, seed: int = 3) -> float:
    """The share of simulated studies (every true effect exactly 0) in which any claim is decided: supported
    says A is better, contradicted that it is worse — both wrong."""
    spec = parse_spec("sim", section)
    rng = random.Random(seed)
    wrong = 0
    for _ in range(studies):
        results = judge(spec, _null_study(rng, len(spec.claims), 15))
        wrong += any(r.corrected != INCONCLUSIVE for r in results)
    return wrong / studies


SIM_CLAIMS = [claim(f"c{i}", f"a{i}", f"b{i}") for i in range(3)]
STUDIES = 2000


def test_sequential_looks_keep_the_familywise_error_rate_at_5_percent():
    """2 000 simulated studies × 3 null claims, looks at 5, 10 and 15 seeds (Pocock-type spending)."""
    rate = _error_rate({"claims": SIM_CLAIMS, "sequential": {"add": 5, "max_seeds": 15}}, STUDIES)
    assert rate <= 0.05
    assert rate >= 0.01  # not vacuous: the procedure does decide sometimes under the null
    # the same looks without spending or Holm (each look at 95 %, each claim alone) would be far off
    naive = _error_rate({"claims": SIM_CLAIMS[:1]}, STUDIES)  # one claim, one look: the nominal 5 %
    assert 0.03 <= naive <= 0.07


def test_without_spending_the_same_looks_inflate_the_error():
    """The rule the sequential test relies on, planted wrong: every look at the full α."""
    spec = parse_spec("sim", {"claims": SIM_CLAIMS[:1], "sequential": {"add": 5, "max_seeds": 15}})
    rng = random.Random(1)
    wrong = 0
    for _ in range(800):
        conds = _null_study(rng, 1, 15)
        decided = False
        for n in (5, 10, 15):
            part = judge(parse_spec("sim", {"claims": SIM_CLAIMS[:1]}),
                         [Condition(c.key, c.label, c.choices, c.runs[:n]) for c in conds])[0]
            decided = decided or part.corrected != INCONCLUSIVE
        wrong += decided
    assert wrong / 800 > 0.07  # three unadjusted looks: the 5 % promise would be broken
    assert spec.sequential is not None


def test_spending_functions():
    assert spent(1.0, "pocock") == pytest.approx(0.05) and spent(1.0, "obrien_fleming") == pytest.approx(0.05)
    assert spent(0.5, "pocock") == pytest.approx(0.05 * math.log(1 + (math.e - 1) / 2))
    assert spent(0.5, "obrien_fleming") == pytest.approx(2 - 2 * sps.norm.cdf(1.959964 / math.sqrt(0.5)), abs=1e-6)
    alphas = look_alphas([5, 10, 15], 15, "pocock")
    assert sum(alphas) == pytest.approx(0.05) and alphas[0] > alphas[1] > alphas[2] > 0


def test_a_sequential_report_states_its_looks(store, tmp_path):
    b = shared(90.0)
    store.sweep("seq", {"norm=bn1": shared(99.0), "norm=none": b})
    section = {"sequential": {"add": 5, "max_seeds": 10}, "claims": [claim("c", "bn1", "none")]}
    readme = store.report(tmp_path, "seq", section)
    assert ("Sequential seeds (pocock spending, +5 per look, cap 10): looks planned at 5 seeds (α 0.031), "
            "10 seeds (α 0.019); looks taken: 1 of 2.") in readme
    assert "look 1, 5 seeds per condition" in row(readme, "c") and "vs α 0.031" in row(readme, "c")
    assert SUPPORTED in row(readme, "c")


def test_only_the_claims_named_in_sequential_claims_add_seeds(store, tmp_path):
    """Two undecided claims; `claims: [grows]` lets only the first ask for seeds: the next look holds its
    conditions alone, and the report says which claims may grow."""
    from bn_study.report.collect import collect, group
    from bn_study.report.sequential import next_look

    close = shared(90.0, own=(0.4, -0.5, 0.3, -0.2, 0.1))  # a tiny, noisy gain: undecided at 5 seeds
    parent = store.sweep("seqc", {"norm=a": shared(90.2), "norm=b": close, "norm=c": shared(90.2), "norm=d": close})
    section = {"sequential": {"add": 5, "max_seeds": 10, "claims": ["grows"]},
               "claims": [claim("grows", "a", "b"), claim("stays", "c", "d")]}
    both = parse_spec("seqc", {**section, "sequential": {"add": 5, "max_seeds": 10}})
    only = parse_spec("seqc", section)
    conditions = group(collect(store.client, "seqc", parent), only)
    assert sorted(c.key for c in next_look(both, conditions)[0]) == ["norm=a", "norm=b", "norm=c", "norm=d"]
    grow, seeds = next_look(only, conditions)
    assert (sorted(c.key for c in grow), seeds) == (["norm=a", "norm=b"], list(range(10)))
    readme = store.report(tmp_path, "seqc", section)
    assert "Only claim 1 may add seeds (`report.sequential.claims`); the others are judged at the planned seeds." in readme


def test_no_interval_removes_more_than_all_of_bs_errors():
    from bn_study.report.claims import evaluate_part
    from bn_study.report.spec import Comparison

    def cond(key: str, values: list[float]) -> Condition:
        runs = tuple(RunRecord(f"{key}-{s}", key, override_choices(key), s, "FINISHED", None, {"val_acc": {1: v}})
                     for s, v in enumerate(values))
        return Condition(key, key, override_choices(key), runs)

    conds = [cond("norm=bn1", [99.0, 99.1, 98.9, 99.0, 99.0]), cond("norm=none", [60.0, 90.0, 30.0, 75.0, 45.0])]
    part = evaluate_part(Comparison("better", {"norm": "bn1"}, {"norm": "none"}, epoch=1), conds)
    assert part.effect.high / (100 - part.b_summary.mean) > 1  # B's spread alone would say "more than all"
    est, low, high = part.relative_error
    assert high == 1.0 and low < est < 1.0


def test_the_first_look_is_the_planned_job_even_when_every_condition_grew():
    """Planned runs carry no ``seeds`` override (the experiment file set them); each look's job names its seeds."""
    from bn_study.report.sequential import planned_seeds

    def cond(key: str) -> Condition:
        runs = tuple(RunRecord(f"{key}-{s}", key, {**override_choices(key), **({} if s < 5 else {"seeds": "[5,6,7,8,9]"})},
                               s, "FINISHED", None, {"val_acc": {1: 90.0}}) for s in range(10))
        return Condition(key, key, override_choices(key), runs)

    conds = [cond("norm=a"), cond("norm=b")]
    assert planned_seeds(conds) == 5
    spec = parse_spec("x", {"sequential": {"add": 5, "max_seeds": 10}, "claims": [claim("c", "a", "b")]})
    [result] = judge(spec, conds)
    assert (result.look, result.seeds) == (1, 5)  # decided at the planned look (5 seeds), not "look 1 of 10 seeds"



@pytest.mark.parametrize("estimate, region, decided", [
    (0.0, Region(0.0, math.inf, low_open=True), CONTRADICTED),  # "A better": exactly no gain is not better
    (0.0, Region(0.0, math.inf, low_open=False), SUPPORTED),  # "at least as good": exactly 0 belongs to it
    (0.5, Region(-0.5, 0.5, low_open=False, high_open=False, above=EXCEEDED), SUPPORTED),
    (0.5, Region(-0.5, 0.5, low_open=False, high_open=True, above=EXCEEDED), EXCEEDED),
])
def test_an_effect_known_exactly_on_a_bound_gets_the_p_value_of_its_verdict(estimate, region, decided):
    """Every seed the same (both arms collapsed to one class, say): a zero-width interval on a bound is decided
    by whether the bound belongs to the region, and its p-value must say the same as the verdict."""
    effect = Difference(estimate, estimate, estimate, math.inf, 0.0, PAIRED, 5)
    assert verdict(effect.low, effect.high, region) == decided
    p = p_values(effect, region)
    assert p[decided] == 0.0
    assert all(v == 1.0 for k, v in p.items() if k != decided)
