"""examples/mnist_mlp/mnist_mlp.py, Elephas' MNIST MLP example on Gophas,
run as a user runs it on full MNIST: under spark-submit (the jar with
--jars, the package with --py-files) and with plain python, both with
Spark's default driver memory (1 GiB), as an Elephas user runs it."""

import os
import re
import subprocess
import sys
import time
import zipfile

import pytest

from conftest import ROOT

import gophas

EXAMPLE = os.path.join(ROOT, "examples", "mnist_mlp", "mnist_mlp.py")
ACCURACY = 0.975


def env_without_package():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return env


def accuracy_of(out):
    m = re.search(r"^Test accuracy: (\d\.\d+)$", out, re.M)
    assert m, f"no test accuracy in the output:\n{out[-3000:]}"
    return float(m.group(1))


def run(args, env, timeout=900):
    start = time.time()
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    seconds = time.time() - start
    assert p.returncode == 0, f"{' '.join(args)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    return p.stdout, seconds


def test_spark_submit_full_mnist(tmp_path, record_property):
    """The Elephas user's script: numpy -> to_simple_rdd -> fit(rdd, epochs=5,
    validation_split=0.1) on local[2], no --driver-memory (it used to end in
    an OutOfMemoryError in the driver's scheduler, then hang)."""
    spark_home = os.environ.get("SPARK_HOME")
    if not spark_home:
        pytest.fail("SPARK_HOME is not set: run the tests through `make test-python`")
    package = tmp_path / "gophas.zip"
    src = os.path.dirname(gophas.__file__)
    with zipfile.ZipFile(package, "w") as z:
        for d, _, files in os.walk(src):
            for f in files:
                if f.endswith(".py"):
                    full = os.path.join(d, f)
                    z.write(full, os.path.relpath(full, os.path.dirname(src)))
    out, seconds = run([os.path.join(spark_home, "bin", "spark-submit"), "--master", "local[2]",
                        "--conf", "spark.ui.enabled=false",
                        "--jars", gophas.jar_path(), "--py-files", str(package), EXAMPLE,
                        "--epochs", "5", "--workers", "2", "--validation-split", "0.1"], env_without_package())
    acc = accuracy_of(out)
    record_property("spark-submit, full MNIST, 5 epochs, 1 GiB driver", f"test accuracy {acc:.4f} in {seconds:.0f} s")
    assert "gophas fit epoch 5/5" in out and "val_accuracy" in out, out[-2000:]
    assert acc >= 0.97, out[-2000:]


def test_python_full_mnist(tmp_path, record_property):
    env = env_without_package()
    env["PYTHONPATH"] = os.path.join(ROOT, "python")
    out, seconds = run([sys.executable, EXAMPLE, "--epochs", "10", "--workers", "2",
                        "--save", str(tmp_path / "model")], env)
    acc = accuracy_of(out)
    record_property("python, full MNIST, 10 epochs", f"test accuracy {acc:.4f} in {seconds:.0f} s")
    assert acc >= ACCURACY, out[-2000:]
    assert os.path.isfile(tmp_path / "model" / "model.safetensors")
