"""The Keras batch-norm article's condition written the way the PyTorch tutorials teach it.

torchvision MNIST -> tensors -> TensorDataset -> DataLoader, an ``nn.Sequential``, the textbook train
loop and an eval loop over the test set after every epoch. It is the baseline ``bench/compare.py``
divides by, so it deliberately has no tricks (no resident batches, no fused optimizer, no threads
tuning).

    python bench/peers/tutorial_loop.py [--data-root DIR] [--epochs 10]
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from common import arguments, tensors


def build_model() -> nn.Sequential:
    """784-512-256-128-64-10, sigmoid, BN after the first *activated* layer (Keras order)."""
    model = nn.Sequential(
        nn.Linear(784, 512), nn.Sigmoid(),
        # Keras BatchNormalization() defaults: epsilon 1e-3, momentum 0.99 (= PyTorch 0.01).
        nn.BatchNorm1d(512, eps=1e-3, momentum=0.01),
        nn.Linear(512, 256), nn.Sigmoid(),
        nn.Linear(256, 128), nn.Sigmoid(),
        nn.Linear(128, 64), nn.Sigmoid(),
        nn.Linear(64, 10),  # logits: CrossEntropyLoss applies the softmax
    )
    for layer in model:
        if isinstance(layer, nn.Linear):  # Keras defaults, not PyTorch's kaiming-uniform
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


def main() -> None:
    args = arguments(__doc__.splitlines()[0])

    torch.manual_seed(0)
    train_loader = DataLoader(tensors(args.data_root, True), batch_size=128, shuffle=True)
    test_loader = DataLoader(tensors(args.data_root, False), batch_size=128)
    model = build_model()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    acc = 0.0
    for epoch in range(1, args.epochs + 1):
        tic = time.perf_counter()
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()

        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        acc = correct / len(test_loader.dataset)
        print(f"epoch {epoch}/{args.epochs} val_acc {acc:.4f} ({time.perf_counter() - tic:.2f} s)")
    print(f"final val_acc {acc:.4f}")


if __name__ == "__main__":
    main()
