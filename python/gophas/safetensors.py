"""The weights file of a Gophas model: safetensors of float32 tensors.

The layout, as the Go kernel reads and writes it (gokernel/safetensors.go):
an 8-byte little-endian header length, a JSON header mapping each tensor's
name to ``{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}``
padded with spaces to a multiple of 8 bytes, then the little-endian float32
data. The order of the tensors (Keras' ``get_weights()`` order) is kept in
the header's ``__metadata__`` as ``{"gophas.order": "<JSON list of names>"}``
and by laying the data out in that order.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Sequence

from gophas.errors import GophasError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["dumps", "loads"]

_ORDER_KEY = "gophas.order"


def dumps(tensors: Sequence[tuple[str, "np.ndarray"]]) -> bytes:
    """Encodes named tensors as a safetensors file, keeping their order.

    Parameters
    ----------
    tensors : sequence of (str, numpy.ndarray)
        Names (unique) and arrays; arrays are written as float32.

    Returns
    -------
    bytes
    """
    import numpy as np

    header: dict = {}
    names = []
    chunks = []
    offset = 0
    for name, array in tensors:
        if not name or name == "__metadata__":
            raise GophasError(f"gophas: safetensors: a tensor has the name {name!r}")
        if name in header:
            raise GophasError(f"gophas: safetensors: tensor name {name!r} appears twice")
        a = np.asarray(array, dtype="<f4", order="C")
        data = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        names.append(name)
        chunks.append(data)
    header["__metadata__"] = {_ORDER_KEY: json.dumps(names, separators=(",", ":"))}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(chunks)


def loads(data: bytes) -> list[tuple[str, "np.ndarray"]]:
    """Decodes a safetensors file of float32 tensors, in the order described
    in the module docstring (metadata order, else data order).

    Parameters
    ----------
    data : bytes

    Returns
    -------
    list of (str, numpy.ndarray)
    """
    import numpy as np

    data = bytes(data)
    if len(data) < 8:
        raise GophasError("gophas: safetensors: file shorter than its header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n < 2 or 8 + n > len(data):
        raise GophasError(f"gophas: safetensors: header length {n} for a file of {len(data)} bytes")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except ValueError as e:
        raise GophasError(f"gophas: safetensors: header: {e}") from None
    meta = header.pop("__metadata__", None) or {}
    body = data[8 + n:]
    order = json.loads(meta[_ORDER_KEY]) if _ORDER_KEY in meta else sorted(header, key=lambda k: tuple(header[k]["data_offsets"]))
    if sorted(order) != sorted(header):
        raise GophasError(f"gophas: safetensors: {_ORDER_KEY} lists {order}, the header holds {sorted(header)}")
    out = []
    for name in order:
        e = header[name]
        if e["dtype"] != "F32":
            raise GophasError(f"gophas: safetensors: tensor {name!r} has dtype {e['dtype']}, want F32")
        begin, end = e["data_offsets"]
        shape = tuple(e["shape"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if end - begin != 4 * count or end > len(body):
            raise GophasError(f"gophas: safetensors: tensor {name!r}: data_offsets {e['data_offsets']} do not hold shape {list(shape)}")
        out.append((name, np.frombuffer(body[begin:end], dtype="<f4").reshape(shape).astype(np.float32)))
    return out
