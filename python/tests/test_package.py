"""The package itself: imports, the jar, safetensors, Keras conversion (no Spark)."""

import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, mlp

import gophas
from gophas import GophasError, Network, safetensors


def test_import_loads_nothing_heavy():
    code = ("import sys, gophas; from gophas import SparkModel; from gophas.spark_model import SparkModel as S; "
            "print(sorted(m for m in ('numpy', 'keras', 'pyspark', 'py4j', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "python")})
    assert out.stdout.strip() == "[]", out.stdout


def test_jar_and_configure():
    from pyspark.sql import SparkSession
    from pyspark.version import __version__

    line = ".".join(__version__.split(".")[:2])
    jar = gophas.jar_path()
    assert os.path.isfile(jar) and os.path.basename(jar).startswith(f"gophas-spark-{line}_"), jar
    builder = SparkSession.Builder().config("spark.jars", "/x/other.jar")
    gophas.configure(builder)
    gophas.configure(builder)
    jars = builder._options["spark.jars"].split(",")
    assert jars[0] == "/x/other.jar", jars
    # the package's jar once (or, with a session running, the session's own)
    assert [os.path.basename(j) for j in jars[1:]] == [os.path.basename(jar)], jars
    # A Gophas jar of this line given already (say with --jars) is kept, not doubled.
    mine = f"/opt/gophas-spark-{line}_{gophas.SPARK_LINES[line]}-0.1.0.jar"
    given_jars = gophas.configure(SparkSession.Builder().config("spark.jars", mine))._options["spark.jars"].split(",")
    assert given_jars[0] == mine and jar not in given_jars, given_jars
    # One of another line is refused, naming the jar to use.
    other = next(f"/opt/gophas-spark-{ln}_{s}-0.1.0.jar" for ln, s in gophas.SPARK_LINES.items() if ln != line)
    with pytest.raises(GophasError, match=rf"is built for Spark .* but this is Spark {re.escape(__version__)}: "
                                          rf"use gophas-spark-{re.escape(line)}_"):
        gophas.configure(SparkSession.Builder().config("spark.jars", other))


def test_jar_for_each_line_and_none_for_others(monkeypatch):
    monkeypatch.delenv("GOPHAS_JAR", raising=False)  # the jars of dist/
    for line, scala in gophas.SPARK_LINES.items():
        assert os.path.basename(gophas.jar_path(f"{line}.1")).startswith(f"gophas-spark-{line}_{scala}-")
    for version in ("3.4.1", "5.0.0", "4.9.0-SNAPSHOT"):
        with pytest.raises(GophasError) as e:
            gophas.jar_path(version)
        assert (f"Spark {version} is not supported" in str(e.value)
                and "3.5 (Scala 2.12), 4.0, 4.1, 4.2 and 4.3 (Scala 2.13)" in str(e.value)), e.value


def test_spark_lines_match_the_build():
    with open(os.path.join(ROOT, "spark-lines.txt")) as f:
        rows = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    assert {r[0]: ".".join(r[1].split(".")[:2]) for r in rows} == gophas.SPARK_LINES


def test_safetensors_round_trip_and_layout():
    ts = [("dense/kernel", np.arange(6, dtype=np.float32).reshape(2, 3)), ("dense/bias", np.array([1.5, -2, 3])),
          ("a/scalar", np.float32(7))]
    data = safetensors.dumps(ts)
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0
    header = json.loads(data[8:8 + n])
    assert json.loads(header["__metadata__"]["gophas.order"]) == ["dense/kernel", "dense/bias", "a/scalar"]
    assert header["dense/bias"] == {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]}
    back = safetensors.loads(data)
    assert [k for k, _ in back] == ["dense/kernel", "dense/bias", "a/scalar"]
    for (_, a), (_, b) in zip(ts, back):
        assert b.dtype == np.float32 and np.array_equal(np.asarray(a, dtype=np.float32), b)
    with pytest.raises(GophasError, match="header length"):
        safetensors.loads(data[:20])


def test_keras_model_to_network_and_back():
    model = mlp()
    net = Network.from_keras(model)
    assert net.spec["compile"] == {"optimizer": model.get_compile_config()["optimizer"],
                                   "loss": "categorical_crossentropy", "metrics": ["accuracy"]}
    assert "compile_config" not in net.spec["model"]
    assert [k for k, _ in net.weights] == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias",
                                           "dense_2/kernel", "dense_2/bias"]
    back = net.to_keras()
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    assert np.array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert back.loss == "categorical_crossentropy" and type(back.optimizer).__name__ == "Adam"


def test_the_example_spec_is_what_keras_writes():
    """examples/mnist_mlp/model.json was written from Keras: the conversion gives the same spec."""
    with open(os.path.join(ROOT, "examples", "mnist_mlp", "model.json")) as f:
        want = json.load(f)
    assert Network.from_keras(mlp()).spec == want


def test_unsupported_compile_arguments_are_named():
    with pytest.raises(GophasError, match="loss_weights"):
        Network.from_keras(mlp(loss_weights=[2.0]))
