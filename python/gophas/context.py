"""The shim jars and the Spark session Gophas runs in."""

from __future__ import annotations

import glob
import os
import re
from typing import TYPE_CHECKING

from gophas.errors import GophasError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["SPARK_LINES", "jar_path", "configure", "readable_console"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_FACADE = "io.gophas.spark.python.PythonGophas"

#: The Spark lines Gophas has a jar for, each with its Scala version (the
#: repository's spark-lines.txt; a test checks that the two agree).
SPARK_LINES = {"3.5": "2.12", "4.0": "2.13", "4.1": "2.13", "4.2": "2.13", "4.3": "2.13"}

_JAR_NAME = re.compile(r"gophas-spark-(\d+\.\d+)_(\d+\.\d+)-(.*)\.jar$")


def _supported() -> str:
    """The supported lines as a phrase: "3.5 (Scala 2.12), 4.0, 4.1, 4.2 and 4.3 (Scala 2.13)"."""
    lines = list(SPARK_LINES.items())
    named = [line if i + 1 < len(lines) and lines[i + 1][1] == scala else f"{line} (Scala {scala})"
             for i, (line, scala) in enumerate(lines)]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]


def _line_of(version: str) -> str:
    m = re.match(r"(\d+)\.(\d+)", version)
    return f"{m.group(1)}.{m.group(2)}" if m else version


def _running_version() -> str:
    """The version of the running Spark: the JVM's when a gateway is up
    (under ``spark-submit`` or ``pyspark``), else the installed ``pyspark``
    package's."""
    from pyspark import SparkContext

    if SparkContext._gateway is not None:
        try:
            return str(SparkContext._gateway.jvm.org.apache.spark.package.SPARK_VERSION())
        except Exception:  # noqa: BLE001 - fall back to the package's version
            pass
    from pyspark.version import __version__

    return __version__


def jar_path(spark_version: str | None = None) -> str:
    """The path of the Gophas jar for a Spark version.

    One jar per Spark line, named ``gophas-spark-<line>_<scala>-<version>.jar``
    (``gophas-spark-4.3_2.13-0.1.0.jar``). Looked up in this order: the
    ``GOPHAS_JAR`` environment variable, the jars packed inside the
    installed package (``gophas/jars/``), and, when running from a source
    checkout, the repository's ``dist/`` folder (``make jars``).

    Parameters
    ----------
    spark_version : str, optional
        The Spark version to find the jar for; default the running one
        (the JVM's when a gateway is up, else the
        installed ``pyspark`` package's).

    Returns
    -------
    str
        An absolute path to an existing file.

    Raises
    ------
    GophasError
        If Gophas has no jar for that Spark line, if ``GOPHAS_JAR`` names a
        jar of another line, or if the jar is not found.
    """
    version = spark_version or _running_version()
    line = _line_of(version)
    if line not in SPARK_LINES:
        raise GophasError(f"gophas: Spark {version} is not supported: Gophas has jars for Spark {_supported()}")
    name = f"gophas-spark-{line}_{SPARK_LINES[line]}-*.jar"
    tried = []
    env = os.environ.get("GOPHAS_JAR")
    if env:
        if os.path.isfile(env):
            _check_jar(env, version)
            return os.path.abspath(env)
        tried.append(f"GOPHAS_JAR={env} (no such file)")
    packed = sorted(glob.glob(os.path.join(_HERE, "jars", name)))
    if packed:
        return packed[-1]
    tried.append(os.path.join(_HERE, "jars", name))
    source = os.path.abspath(os.path.join(_HERE, "..", "..", "dist"))
    found = sorted(glob.glob(os.path.join(source, name)))
    if found:
        return found[-1]
    tried.append(os.path.join(source, name))
    raise GophasError(f"gophas: the jar for Spark {version} was not found; tried " + ", ".join(tried) +
                      ": install the package with `pip install ./python` after `make jars`, or set GOPHAS_JAR")


def _check_jar(jar: str, version: str) -> None:
    """Refuses a Gophas jar built for another Spark line than version's."""
    m = _JAR_NAME.search(os.path.basename(jar))
    if m and m.group(1) != _line_of(version):
        line = _line_of(version)
        advice = (f"use gophas-spark-{line}_{SPARK_LINES[line]}-{m.group(3)}.jar instead" if line in SPARK_LINES
                  else f"Gophas has jars for Spark {_supported()}")
        raise GophasError(f"gophas: {os.path.basename(jar)} is built for Spark {m.group(1)}, "
                          f"but this is Spark {version}: {advice}")


def configure(builder: "SparkSession.Builder | None" = None, jar: str | None = None) -> "SparkSession.Builder":
    """Puts the Gophas jar for the running Spark on a session that is about to start.

    Adds the jar (:func:`jar_path`) to ``spark.jars`` (keeping the jars
    already there, those of the builder and, under ``spark-submit``, those
    of ``--jars``; a Gophas jar already among them is kept instead, if it is
    the one for this Spark line), which puts it on the driver's and the
    executors' class paths. It must be called before ``getOrCreate()``
    starts the session; a session that is already running keeps its class
    path (start it with ``--jars`` instead).

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

    Raises
    ------
    GophasError
        If Gophas has no jar for this Spark, or the jar given (or already
        among the session's jars) is for another Spark line.

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
    version = _running_version()
    ours = [j for j in existing if _JAR_NAME.search(os.path.basename(j))]
    for j in ours + ([jar] if jar else []):
        _check_jar(j, version)
    if not ours:
        existing.append(jar or jar_path(version))
    return builder.config("spark.jars", ",".join(existing))


def readable_console(builder: "SparkSession.Builder | None" = None) -> "SparkSession.Builder":
    """Gives a job's console what a person wants to read while a model trains.

    Spark's WARN and above, Spark's console progress bar, and Gophas' own
    lines (a fit's start line, one line per epoch, the result) instead of
    hundreds of INFO lines. A user's own logging wins: the levels change only
    while Spark runs on its built-in log4j2 defaults, and the progress bar is
    turned on only when ``spark.ui.showConsoleProgress`` is not set. Started
    from ``python``, PySpark runs Spark as a shell, whose defaults are
    already these; under ``spark-submit`` this quiets Spark's defaults
    through the Gophas jar (``--jars``). Call it before ``getOrCreate()``.

    Parameters
    ----------
    builder : SparkSession.Builder, optional
        The builder to configure; default ``SparkSession.builder``.

    Returns
    -------
    SparkSession.Builder
        The same builder, for chaining.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    if builder is None:
        builder = SparkSession.builder
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):
        return builder
    SparkContext._ensure_initialized()
    try:
        SparkContext._jvm.io.gophas.spark.ReadableConsole.quietSparkDefaults()
    except Exception:  # noqa: BLE001 - no Gophas jar on the JVM's class path: leave the console as it is
        return builder
    options = getattr(builder, "_options", {}) or {}
    key = "spark.ui.showConsoleProgress"
    if key in options or SparkConf().contains(key):
        return builder
    return builder.config(key, "true")


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
    _check_loaded_jar(spark, jvm)
    return obj


_checked_jvms: set = set()


def _check_loaded_jar(spark: "SparkSession", jvm) -> None:
    """Refuses, once per JVM, a session whose Gophas jar is for another Spark
    line: before any class of a jar built for another Scala version fails to
    load with a NoClassDefFoundError."""
    if id(jvm) in _checked_jvms:
        return
    try:
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        cls = jvm.java.lang.Class.forName(_FACADE, False, loader)
        location = str(cls.getProtectionDomain().getCodeSource().getLocation().getPath())
    except Exception:  # noqa: BLE001 - nothing to check against; the JVM checks the line itself
        location = ""
    if location:
        _check_jar(location, spark.version)
    _checked_jvms.add(id(jvm))


def _safe_jar() -> str:
    try:
        return jar_path()
    except GophasError:
        return "gophas-spark-<line>_<scala>-<version>.jar (the one for your Spark)"
