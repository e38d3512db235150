"""Packs the Gophas shim jars into the wheel.

`make jars` writes one jar per Spark line, dist/gophas-spark-<line>_<scala>-<version>.jar,
at the root of the repository; they are copied into gophas/jars/ when the
package is built, so `pip install ./python` gives a package that carries
every line's jar and gophas.configure picks the one for the running Spark.
GOPHAS_JARS (a folder) names another place to take them from.
"""

import ast
import glob
import os
import re
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def spark_lines():
    """SPARK_LINES of gophas/context.py, read without importing the package."""
    with open(os.path.join(HERE, "gophas", "context.py"), encoding="utf-8") as f:
        m = re.search(r"^SPARK_LINES = (\{.*?\})$", f.read(), re.M)
    return ast.literal_eval(m.group(1))


def shim_jars():
    """Every line's jar, or a list of the missing ones."""
    folder = os.environ.get("GOPHAS_JARS") or os.path.join(HERE, "..", "dist")
    jars, missing = [], []
    for line, scala in spark_lines().items():
        found = sorted(glob.glob(os.path.join(folder, f"gophas-spark-{line}_{scala}-*.jar")))
        found = [j for j in found if not j.endswith("-tests.jar")]
        (jars if found else missing).append(found[-1] if found else f"gophas-spark-{line}_{scala}-<version>.jar")
    return jars, missing, folder


class BuildPyWithJars(build_py):
    def run(self):
        super().run()
        jars, missing, folder = shim_jars()
        packed = glob.glob(os.path.join(HERE, "gophas", "jars", "*.jar"))
        if missing and not packed:
            raise SystemExit(f"gophas: no {', '.join(missing)} in {os.path.abspath(folder)} to pack: run `make jars` "
                             "at the repository root first (or set GOPHAS_JARS to a folder holding them)")
        target = os.path.join(self.build_lib, "gophas", "jars")
        os.makedirs(target, exist_ok=True)
        if not missing:
            for old in glob.glob(os.path.join(target, "*.jar")):
                os.remove(old)
            for jar in jars:
                shutil.copy2(jar, os.path.join(target, os.path.basename(jar)))


setup(cmdclass={"build_py": BuildPyWithJars})
