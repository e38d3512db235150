"""Numpy arrays to Spark RDDs and DataFrames, with Elephas' names.

``to_simple_rdd(sc, x, y)`` is what Elephas users hand to ``fit``; Gophas
turns such an RDD into a DataFrame once per fit (an ``array<float>``
features column and a label column) and trains on the executors without
Python.

An RDD made by ``sc.parallelize`` carries its rows inside its partitions,
and every task that reads such a partition ships them from the driver. A fit
reads the pairs exactly once: one job converts them and caches the result
on the executors, and every later stage (the epochs, the validation) reads
that copy. ``to_simple_rdd`` also cuts the rows into slices of a few
megabytes, so no task (and no buffer that serializes one on the driver) is
large, while a fit without ``num_workers`` still trains with as many workers
as Elephas would (``sc.defaultParallelism``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from pyspark import RDD, SparkContext
    from pyspark.sql import DataFrame

__all__ = ["to_simple_rdd", "to_data_frame", "from_data_frame"]

# Bytes of pairs per slice of to_simple_rdd: the size of one task.
SLICE_BYTES = 8 << 20


def to_simple_rdd(sc: "SparkContext", features: "np.ndarray", labels: "np.ndarray") -> "RDD":
    """An RDD of ``(x, y)`` pairs, one per row, as Elephas makes it.

    The rows are cut into slices of about 8 MB (at least
    ``sc.defaultParallelism`` of them), so that no task carries much of the
    data; a fit without ``num_workers`` trains with ``sc.defaultParallelism``
    workers, as Elephas does.

    Parameters
    ----------
    sc : pyspark.SparkContext
    features : numpy.ndarray
        One row per sample.
    labels : numpy.ndarray
        One label per sample: a number, a class index or a one-hot vector.

    Returns
    -------
    pyspark.RDD
    """
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    workers = sc.defaultParallelism
    size = getattr(features, "nbytes", 0) + getattr(labels, "nbytes", 0)
    slices = max(workers, min(len(features), math.ceil(size / SLICE_BYTES)))
    rdd = sc.parallelize(list(zip(features, labels)), max(1, slices))
    rdd._gophas_workers = workers
    rdd._gophas_features_dtype = _features_dtype(features)
    return rdd


def to_data_frame(sc: "SparkContext", features: "np.ndarray", labels: "np.ndarray",
                  categorical: bool = False) -> "DataFrame":
    """A DataFrame of ``features`` (a dense Spark ML vector) and ``label``.

    Parameters
    ----------
    sc : pyspark.SparkContext
    features : numpy.ndarray
        One row per sample, of any shape (flattened row-major). Integer
        features (token ids) give an ``array<int>`` or ``array<long>``
        column instead of a vector, which reaches the workers as integers.
    labels : numpy.ndarray
    categorical : bool, default False
        When True the labels are one-hot rows and ``label`` is their class
        index (a double); else each label is kept: a double, or an array
        when it has several values.

    Returns
    -------
    pyspark.sql.DataFrame
    """
    import numpy as np
    from pyspark.ml.functions import array_to_vector

    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    y = np.asarray(labels, dtype=np.float64)
    if categorical and y.ndim > 1:
        y = y.reshape(len(y), -1).argmax(axis=1).astype(np.float64)
    df = _local_frame(features, y, spark=_spark_of(sc))
    if _features_dtype(features) != np.float32:
        return df  # token ids stay an array of integers
    return df.select(array_to_vector("features").alias("features"), "label")


def from_data_frame(df: "DataFrame", categorical: bool = False, nb_classes: int | None = None,
                    features_col: str = "features", label_col: str = "label") -> tuple:
    """Features and labels of a DataFrame as numpy arrays (collected to the driver).

    Parameters
    ----------
    df : pyspark.sql.DataFrame
    categorical : bool, default False
        When True the labels (class indexes) come back one-hot.
    nb_classes : int, optional
        Width of the one-hot labels; default the largest label plus one.

    Returns
    -------
    tuple of numpy.ndarray
        ``(features, labels)``.
    """
    import numpy as np

    rows = df.select(features_col, label_col).collect()
    x = np.array([r[0].toArray() if hasattr(r[0], "toArray") else r[0] for r in rows], dtype=np.float32)
    y = np.array([r[1] for r in rows], dtype=np.float32)
    if categorical:
        k = nb_classes or int(y.max()) + 1
        y = np.eye(k, dtype=np.float32)[y.astype(np.int64)]
    return x, y


# ---- what SparkModel uses -------------------------------------------------------


def _pair_row(xdt: Any):
    def row(pair: Any) -> tuple:
        """One (x, y) pair as a row: the features as xdt, the label as a list
        of doubles (one value for a number or class index: the workers treat
        a one-value list as that value)."""
        import numpy as np

        try:
            x, y = pair
        except (TypeError, ValueError):
            raise ValueError(f"the RDD must hold (x, y) pairs; one of its elements is a {type(pair).__name__}") from None
        return (np.asarray(x, dtype=xdt).ravel().tolist(), np.asarray(y, dtype=np.float64).ravel().tolist())
    return row


def _pairs_schema(xdt: Any = None):
    import numpy as np
    from pyspark.sql.types import ArrayType, DoubleType, StructField, StructType

    return StructType([StructField("features", ArrayType(_spark_type(xdt or np.float32), False), False),
                       StructField("label", ArrayType(DoubleType(), False), False)])


def _rdd_frame(rdd: "RDD", num_workers: int | None = None) -> "DataFrame":
    """An RDD of (x, y) pairs as a DataFrame of features and label, read once.

    The features' type (integers for token ids, else float32) is the one
    ``to_simple_rdd`` noted on its RDD; another RDD is peeked at for it (one
    element of its first partition). No other job runs here. Without
    ``num_workers`` the frame is repartitioned (to the workers
    ``to_simple_rdd`` planned, else to the RDD's partitions): the shuffle
    reads the pairs once, and the partitions of every later stage are the
    shuffle's, which carry no rows. With ``num_workers`` the fit
    repartitions to it, to the same effect."""
    from gophas.context import _session
    from gophas.errors import GophasError

    xdt = getattr(rdd, "_gophas_features_dtype", None)
    if xdt is None:
        first = rdd.take(1)
        if not first:
            raise GophasError("the RDD has no rows to train on")
        try:
            x, _ = first[0]
        except (TypeError, ValueError):
            raise ValueError(f"the RDD must hold (x, y) pairs; its first element is a {type(first[0]).__name__}") from None
        xdt = _features_dtype(x)
    df = _session().createDataFrame(rdd.map(_pair_row(xdt)), _pairs_schema(xdt), verifySchema=False)
    if num_workers:
        return df
    return df.repartition(getattr(rdd, "_gophas_workers", None) or rdd.getNumPartitions())


def _pairs_frame(x: "np.ndarray", y: "np.ndarray") -> "DataFrame":
    """Numpy features and labels as a DataFrame of features and label."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} feature rows but {len(y)} labels")
    return _local_frame(x, y)


def _spark_of(sc: "SparkContext | None"):
    from pyspark.sql import SparkSession

    from gophas.context import _session

    active = SparkSession.getActiveSession()
    if active is not None or sc is None:
        return active or _session()
    return SparkSession(sc)


def _features_dtype(x: Any):
    """The numpy type features travel as: integers (token ids) as int32 or
    int64, to the workers as integers, anything else as float32."""
    import numpy as np

    a = x if hasattr(x, "dtype") else np.asarray(x)
    if np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_):
        return np.int32 if a.dtype.itemsize < 4 or a.dtype == np.int32 else np.int64
    return np.float32


def _spark_type(dtype: Any):
    import numpy as np
    from pyspark.sql.types import FloatType, IntegerType, LongType

    return {np.int32: IntegerType(), np.int64: LongType()}.get(dtype, FloatType())


def _local_frame(x: "np.ndarray", y: "np.ndarray | None" = None, ids: bool = False, spark=None) -> "DataFrame":
    """Numpy rows as a DataFrame, in order: ``id`` (with ids), ``features``
    (array<float>) and, with y, ``label`` (a double, or array<double> when
    each label has several values). Through Arrow when pyarrow is installed,
    else as pickled rows."""
    import numpy as np
    from pyspark.sql.types import ArrayType, DoubleType, LongType, StructField, StructType

    spark = spark or _spark_of(None)
    xdt = _features_dtype(x)
    xs = np.ascontiguousarray(np.asarray(x, dtype=xdt).reshape(len(x), -1))
    n, width = xs.shape
    ys = None if y is None else np.asarray(y, dtype=np.float64).reshape(n, -1)
    label_array = ys is not None and ys.shape[1] > 1
    fields = ([StructField("id", LongType(), False)] if ids else []) + \
        [StructField("features", ArrayType(_spark_type(xdt), False), False)]
    if ys is not None:
        fields.append(StructField("label", ArrayType(DoubleType(), False) if label_array else DoubleType(), False))
    schema = StructType(fields)
    try:
        import pyarrow as pa
    except ImportError:
        pa = None
    if pa is not None:
        def lists(flat, w, t):
            return pa.ListArray.from_arrays(pa.array(np.arange(0, n * w + 1, w, dtype=np.int32)), pa.array(flat, t))
        cols = {}
        if ids:
            cols["id"] = pa.array(np.arange(n, dtype=np.int64))
        cols["features"] = lists(xs.ravel(), width, pa.from_numpy_dtype(xdt))
        if ys is not None:
            cols["label"] = lists(ys.ravel(), ys.shape[1], pa.float64()) if label_array else pa.array(ys[:, 0])
        return spark.createDataFrame(pa.table(cols), schema=schema)
    rows = []
    for i in range(n):
        row = ([i] if ids else []) + [xs[i].tolist()]
        if ys is not None:
            row.append(ys[i].tolist() if label_array else float(ys[i, 0]))
        rows.append(tuple(row))
    parts = max(1, min(spark.sparkContext.defaultParallelism, n))
    return spark.createDataFrame(spark.sparkContext.parallelize(rows, parts), schema, verifySchema=False)
