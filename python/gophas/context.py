"""The shim jar and the Spark session Gophas runs in."""

from __future__ import annotations

import glob
import os
from typing import TYPE_CHECKING

from gophas.errors import GophasError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["jar_path", "configure"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_FACADE = "io.gophas.spark.python.PythonGophas"


def jar_path() -> str:
    """The path of the Gophas shim jar (``gophas-spark_2.13-<version>.jar``).

    Looked up in this order: the ``GOPHAS_JAR`` environment variable, the jar
    packed inside the installed package (``gophas/jars/``), and, when running
    from a source checkout, the repository's ``dist/`` folder (``make jar``).

    Returns
    -------
    str
        An absolute path to an existing file.

    Raises
    ------
    GophasError
        If no jar is found.
    """
    tried = []
    env = os.environ.get("GOPHAS_JAR")
    if env:
        if os.path.isfile(env):
            return os.path.abspath(env)
        tried.append(f"GOPHAS_JAR={env} (no such file)")
    packed = sorted(glob.glob(os.path.join(_HERE, "jars", "gophas-spark_*.jar")))
    if packed:
        return packed[-1]
    tried.append(os.path.join(_HERE, "jars", "gophas-spark_*.jar"))
    source = os.path.abspath(os.path.join(_HERE, "..", "..", "dist"))
    found = [j for j in sorted(glob.glob(os.path.join(source, "gophas-spark_2.13-*.jar"))) if not j.endswith("-tests.jar")]
    if found:
        return found[-1]
    tried.append(os.path.join(source, "gophas-spark_2.13-*.jar"))
    raise GophasError("gophas: the shim jar was not found; tried " + ", ".join(tried) +
                      ": install the package with `pip install ./python` after `make jar`, or set GOPHAS_JAR")


def configure(builder: "SparkSession.Builder | None" = None, jar: str | None = None) -> "SparkSession.Builder":
    """Puts the Gophas jar on a session that is about to start.

    Adds the jar to ``spark.jars`` (keeping the jars already there, those
    of the builder and, under ``spark-submit``, those of ``--jars``; a
    Gophas jar already among them is kept instead), which puts it on the
    driver's and the executors' class paths. It must be called before
    ``getOrCreate()`` starts the session; a session that is already running
    keeps its class path (start it with ``--jars`` instead).

    Parameters
    ----------
    builder : SparkSession.Builder, optional
        The builder to configure; default ``SparkSession.builder``.
    jar : str, optional
        The jar to use; default :func:`jar_path`.

    Returns
    -------
    SparkSession.Builder
        The same builder, for chaining.

    Examples
    --------
    >>> from pyspark.sql import SparkSession
    >>> import gophas
    >>> spark = gophas.configure(SparkSession.builder.master("local[2]")).getOrCreate()  # doctest: +SKIP
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    if builder is None:
        builder = SparkSession.builder
    options = getattr(builder, "_options", {}) or {}
    existing = [j for j in str(options.get("spark.jars", "")).split(",") if j]
    if os.environ.get("PYSPARK_GATEWAY_PORT") or SparkContext._gateway is not None:
        # Under spark-submit or pyspark the JVM holds --jars already: keep them.
        SparkContext._ensure_initialized()
        existing += [j for j in SparkConf().get("spark.jars", "").split(",") if j and j not in existing]
    if not any(os.path.basename(j).startswith("gophas-spark_") for j in existing):
        existing.append(jar or jar_path())
    return builder.config("spark.jars", ",".join(existing))


def _session() -> "SparkSession":
    """The active SparkSession; one started with the Gophas jar when there is
    none."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None and SparkContext._active_spark_context is not None:
        spark = SparkSession(SparkContext._active_spark_context)
    if spark is None:
        spark = configure(SparkSession.builder.appName("gophas")).getOrCreate()
    return spark


def _facade():
    """The JVM object io.gophas.spark.python.PythonGophas."""
    from py4j.java_gateway import JavaClass

    spark = _session()
    jvm = spark.sparkContext._jvm
    obj = jvm
    for part in _FACADE.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, JavaClass):
        raise GophasError(
            "gophas: the Gophas jar is not on this Spark session's class path: build the session with "
            "gophas.configure(SparkSession.builder) before getOrCreate(), or pass --jars "
            f"{_safe_jar()} to spark-submit/pyspark")
    return obj


def _safe_jar() -> str:
    try:
        return jar_path()
    except GophasError:
        return "gophas-spark_2.13-<version>.jar"
