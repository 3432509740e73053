"""The Keras batch-norm article's own code, on Keras 3 with the PyTorch backend.

The model, compile and fit calls are the article's; only the data loading differs: the same MNIST IDX
files the other peers read (parsed with numpy), because keras.datasets.mnist.load_data() downloads.
Keras defaults do the rest: glorot-uniform kernels, zero biases, BatchNormalization(epsilon=1e-3,
momentum=0.99), shuffle=True, validation batch size = batch_size, verbose="auto" (= 1: the progress
bar, redrawn every few steps even into a log file; left on, as the article runs it).

    python bench/peers/keras_article.py [--data-root DIR] [--epochs 10]

Needs ``pip install keras``.
"""

from __future__ import annotations

import os

# Must precede the first `import keras`: the backend is chosen once, at import.
os.environ.setdefault("KERAS_BACKEND", "torch")

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (big-endian header: magic with the rank in its last byte, then one uint32 per dim)."""
    raw = path.read_bytes()
    ndim = raw[3]
    shape = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(root: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) as the article prepares them: /255, flat, one-hot."""
    raw = Path(root) / "MNIST" / "raw"

    def split(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        x = read_idx(raw / f"{prefix}-images-idx3-ubyte").reshape(-1, 784).astype("float32") / 255
        y = keras.utils.to_categorical(read_idx(raw / f"{prefix}-labels-idx1-ubyte"), 10)
        return x, y

    return split("train"), split("t10k")


def build_model() -> keras.Sequential:
    return keras.Sequential([
        keras.Input(shape=(784,)),
        layers.Dense(512, activation="sigmoid"),
        layers.BatchNormalization(),
        layers.Dense(256, activation="sigmoid"),
        layers.Dense(128, activation="sigmoid"),
        layers.Dense(64, activation="sigmoid"),
        layers.Dense(10, activation="softmax"),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("BN_STUDY_DATA", "data"))
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_mnist(args.data_root)
    model = build_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=128, epochs=args.epochs,
                        validation_data=(x_test, y_test))
    for epoch, acc in enumerate(history.history["val_accuracy"], 1):
        print(f"epoch {epoch}/{args.epochs} val_acc {acc:.4f}")
    print(f"final val_acc {history.history['val_accuracy'][-1]:.4f}")


if __name__ == "__main__":
    main()
