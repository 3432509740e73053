"""The Keras batch-norm article's condition as a LightningModule, run by ``Trainer.fit``.

Same model, data and optimizer as ``tutorial_loop.py``; what this adds is Lightning's own machinery as
a typical user leaves it. ``Trainer(max_epochs=10, accelerator="cpu", devices=1)`` keeps these
defaults, all of which cost time and are part of what is measured:

- logger=True: ``TensorBoardLogger`` when tensorboard is installed, else ``CSVLogger`` (here: it is
  not; ./lightning_logs/version_N/metrics.csv), written every ``log_every_n_steps=50``;
- enable_checkpointing=True: ``ModelCheckpoint`` saves a .ckpt after every epoch (keeps the last);
- enable_progress_bar=True: ``RichProgressBar`` when rich is installed (it is: bn_study needs it),
  else ``TQDMProgressBar``; left on because turning it off would not be the typical run, and in a
  log file it only leaves its final state behind (rich sees no terminal);
- enable_model_summary=True (``RichModelSummary``), num_sanity_val_steps=2 (two validation batches
  before training), check_val_every_n_epoch=1, 32-bit precision, DataLoaders with num_workers=0
  (Lightning suggests more workers; a typical user leaves it).

    python bench/peers/lightning_fit.py [--data-root DIR] [--epochs 10]

Needs ``pip install lightning``.
"""

from __future__ import annotations


import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from common import arguments, tensors


class ArticleMLP(L.LightningModule):
    """784-512-256-128-64-10, sigmoid, BN after the first *activated* layer (Keras order)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(784, 512), nn.Sigmoid(),
            # Keras BatchNormalization() defaults: epsilon 1e-3, momentum 0.99 (= PyTorch 0.01).
            nn.BatchNorm1d(512, eps=1e-3, momentum=0.01),
            nn.Linear(512, 256), nn.Sigmoid(),
            nn.Linear(256, 128), nn.Sigmoid(),
            nn.Linear(128, 64), nn.Sigmoid(),
            nn.Linear(64, 10),  # logits: cross_entropy applies the softmax
        )
        for layer in self.net:
            if isinstance(layer, nn.Linear):  # Keras defaults, not PyTorch's kaiming-uniform
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        # on_epoch averages over batches weighted by batch size, i.e. the exact accuracy.
        self.log("val_acc", (self(x).argmax(1) == y).float().mean(), on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:  # the 2-batch sanity check is not an epoch
            acc = self.trainer.callback_metrics["val_acc"].item()
            print(f"\nepoch {self.current_epoch + 1}/{self.trainer.max_epochs} val_acc {acc:.4f}")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9, nesterov=True)


def main() -> None:
    args = arguments(__doc__.splitlines()[0])

    L.seed_everything(0)
    train_loader = DataLoader(tensors(args.data_root, True), batch_size=128, shuffle=True)
    test_loader = DataLoader(tensors(args.data_root, False), batch_size=128)
    trainer = L.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1)
    trainer.fit(ArticleMLP(), train_dataloaders=train_loader, val_dataloaders=test_loader)
    print(f"final val_acc {trainer.callback_metrics['val_acc'].item():.4f}")


if __name__ == "__main__":
    main()
