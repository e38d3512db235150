"""The exception Gophas raises in Python."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

__all__ = ["GophasError"]


class GophasError(RuntimeError):
    """A failure of Gophas: a model it cannot run, bad data, or an error of
    the JVM shim or of the Go worker, parameter server or kernel.

    The message is the shim's or the Go side's own text (for instance
    ``the model is not usable: gokernel: ... layer "conv3d": unsupported
    class Conv3D``), not a py4j stack dump.

    Attributes
    ----------
    java_class : str or None
        The class of the JVM exception it came from, if any.
    """

    def __init__(self, message: str, java_class: str | None = None) -> None:
        super().__init__(message)
        self.java_class = java_class


_GOPHAS_LINE = re.compile(r"io\.gophas\.spark\.GophasException: (.*)")


def _message_of(java_exception) -> tuple[str, str | None]:
    """The GophasException message in a JVM exception's cause chain, else
    the exception's own message."""
    from gophas.context import _facade

    cls = None
    try:
        cls = java_exception.getClass().getName()
        found = _facade().gophasMessage(java_exception)
        if found is not None:
            return str(found), cls
    except Exception:  # the facade may be missing (no jar): fall back to text
        pass
    text = str(java_exception.toString()) if java_exception is not None else ""
    m = _GOPHAS_LINE.search(text)
    if m:
        return m.group(1), cls
    msg = java_exception.getMessage() if java_exception is not None else None
    return (str(msg) if msg is not None else text), cls


@contextmanager
def jvm_errors() -> Iterator[None]:
    """Turns a JVM exception raised inside the block into a GophasError
    carrying the shim's or the Go side's message."""
    from py4j.protocol import Py4JJavaError

    try:
        yield
    except Py4JJavaError as e:
        msg, cls = _message_of(e.java_exception)
        raise GophasError(msg, cls) from None
    except Exception as e:  # pyspark's captured JVM exceptions
        origin = getattr(e, "_origin", None)
        if origin is None or type(e).__module__.startswith("gophas"):
            raise
        msg, cls = _message_of(origin)
        raise GophasError(msg, cls) from None
