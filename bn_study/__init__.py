"""bn_study: what batch normalization and its rivals really do to small networks on MNIST."""

__version__ = "0.1.0"
