"""The report's "How the numbers are made" section: every rule the tables and verdicts follow, in words."""

METHOD = """\
- Each condition ran once per seed (5 seeds unless the sweep said otherwise); a number is the mean over
  its **finished** runs with a **95 % Student-t interval** (n − 1 degrees of freedom). Runs that
  failed (MLflow status FAILED: diverged or crashed) are counted in *runs (finished/total)*, listed,
  and left out of the means — and then put back at the worst value (chance accuracy; the worst loss
  any run logged; for epochs to a threshold, never reaching it): a verdict that changes when they are
  counted says so in a note.
- A comparison's effect is "how much A improves on B" in the metric's good direction (higher accuracy,
  lower loss, fewer epochs). Each claim names its analysis: **Welch** (unequal-variance, unpaired) or
  **paired t** over the seeds both arms ran (same seed = same initial weights where the shapes match and
  the same shuffle order). Accuracies are in percent, so their effects are in percentage points (pp);
  beside them, the share of B's errors A removes, and the test-set sampling error of one run's accuracy
  (binomial, √(p(1 − p)/N) on the N evaluation images) — every seed reads the same images, so the
  between-seed interval does not contain it.
- Each claim states the region its effect must lie in. **supported**: the whole CI lies inside the
  region; **contradicted**: the CI lies entirely on the other side of a bound the claim sets (below its
  minimum effect; above the margin of "A is not better"); **exceeded**: the CI lies beyond the claim's
  bound in its own direction ("a little" that is a lot; "A ≈ B" where A is clearly better);
  **inconclusive**: the CI straddles an edge (or a condition is missing or has fewer than 2 runs).
  Tests: *better* — effect above `min_effect`, at most `max_effect` when given; *not_better* — effect
  at most `margin`; *equivalent* — effect within ± `margin` (TOST-like, with the stricter 95 %
  interval); *faster* — fewer epochs to a threshold, a run that never reached it counting as one epoch
  past its end (a verdict that censoring could flip is withheld, and the effect is shown as the bound it
  is: ≥ when only B has such runs, ≤ when only A has, not measured when both have; an arm all of whose runs
  never got there as `>E`; runs are read at epoch ends, so a time E means somewhere in (E − 1, E]: the
  interval is widened by one epoch — in steps, by the epoch's steps — on each side and excludes its ends,
  never zero-wide when every seed took the same epochs); *wider_range* — more decades of a swept
  parameter's grid reaching a threshold, each edge of a range known only to lie between two grid values, so
  the interval is widened by half those gaps per edge and excludes its ends; *interaction* — A's gain over B under
  one setting minus the same gain under another. A claim with several parts holds only if all hold.
- **Holm**: the headline verdict of each claim is Holm's step-down across the report's claims (the
  k-th smallest p of m is judged at level 1 − α/(m − k + 1), α = 0.05), so the chance of any wrong
  decision in the report stays ≤ 5 %; the uncorrected 95 % verdict is shown beside it. A claim's p is
  the smallest α at which its interval decides it.
- **Sequential seeds** (`report.sequential`): after the planned seeds, the conditions of claims still
  undecided get `add` more seeds per look, up to `max_seeds`; look k spends α_k, the increment of a
  Lan–DeMets spending function at n_k / max_seeds, and Holm shares α_k among the claims undecided at
  that look. The α_k sum to α, so by the union bound the error rate over all looks stays ≤ 5 %.
- Names: a number measured on the test images is called *test* in words, its MLflow key beside it; with
  `data.val=test` the per-epoch `val_*` are the test set (so *test accuracy (`val_acc`)* in a figure and
  `test_acc` in a table are the same images), with `data.val=holdout` they are *validation*. Tables and
  claims name the key. Losses of different kinds (MSE, BCE, cross-entropy) never share a table column.
  Colours: one per value of the factor a figure colours by, the same in every report (reports/README.md).
- Published numbers are single runs rounded to a published precision. *agrees*: our mean's 95 % CI lies
  inside the rounding band (an equivalence test at that rounding); *not distinguishable*: the band
  overlaps our CI or the 95 % prediction interval for one run (mean ± t·s·√(1 + 1/n)) — a failure to
  reject, not a match; *disagrees*: outside both."""
