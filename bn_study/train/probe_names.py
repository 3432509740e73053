"""The activation probe's statistic names, shared by the probe (which logs them) and the report (which reads
them back), without importing torch.

Per hidden layer ``actN``: ``actN_mean``, ``actN_std`` and one fraction of its (image, unit) activations that
pass almost no gradient, named by what it counts — ``saturated`` (sigmoid, tanh), ``zero_frac`` (relu: exactly
0, about half of them before training: relu's normal sparsity) or ``negative`` (leaky relu) — and for relu
``dead_units``, the fraction of the layer's units that are 0 on every probe image. All are fractions in
[0, 1], in MLflow and in the reports.
"""

SATURATED, ZERO_FRACTION, NEGATIVE = "saturated", "zero_frac", "negative"
DEAD_UNITS = "dead_units"
INACTIVE_KINDS = (SATURATED, ZERO_FRACTION, NEGATIVE)  # one per activation: what "inactive" means for it
# runs logged before the rename called relu's fraction of zero activations "dead": the same number
LEGACY_NAMES = {"dead": ZERO_FRACTION}
