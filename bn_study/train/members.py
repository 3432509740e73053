"""K models with the same architecture trained as one: the member axis first, ``[K, B, F] → [K, B, C]``.

K = 1 is an ordinary run of the plain model; K > 1 are independent copies (own init, own shuffle order,
own BatchNorm statistics) stacked into one model (``stacked.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from bn_study.train.stacked import stack_models, unstack_member


class Members:
    """K models with the same architecture, called as one: ``[K, B, F] → [K, B, C]``."""

    def __init__(self, models: Sequence[nn.Sequential]) -> None:
        self.count = len(models)
        self.template = models[0]
        self.net: nn.Sequential = models[0] if self.count == 1 else stack_models(models)

    def __call__(self, x: Tensor) -> Tensor:
        if self.count == 1:
            return self.net(x[0]).unsqueeze(0)
        return self.net(x)

    def member(self, k: int) -> nn.Sequential:
        """Member k as the plain model a separate run would have."""
        return self.net if self.count == 1 else unstack_member(self.net, k, self.template)

    @property
    def has_batch_norm(self) -> bool:
        return any(isinstance(m, nn.BatchNorm1d) for m in self.template.modules())
