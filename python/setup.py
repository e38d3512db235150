"""Packs the Gophas shim jar into the wheel.

The jar (`make jar` writes dist/gophas-spark_2.13-<version>.jar at the root
of the repository) is copied into gophas/jars/ when the package is built,
so `pip install ./python` gives a package that carries it. GOPHAS_JAR names
another jar to pack.
"""

import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def shim_jar():
    explicit = os.environ.get("GOPHAS_JAR")
    if explicit and os.path.isfile(explicit):
        return explicit
    found = sorted(glob.glob(os.path.join(HERE, "..", "dist", "gophas-spark_2.13-*.jar")))
    found = [j for j in found if not j.endswith("-tests.jar")]
    return found[-1] if found else None


class BuildPyWithJar(build_py):
    def run(self):
        super().run()
        jar = shim_jar()
        packed = glob.glob(os.path.join(HERE, "gophas", "jars", "*.jar"))
        if jar is None and not packed:
            raise SystemExit("gophas: no shim jar to pack: run `make jar` at the repository root first "
                             "(or set GOPHAS_JAR to the jar)")
        target = os.path.join(self.build_lib, "gophas", "jars")
        os.makedirs(target, exist_ok=True)
        if jar is not None:
            for old in glob.glob(os.path.join(target, "*.jar")):
                os.remove(old)
            shutil.copy2(jar, os.path.join(target, os.path.basename(jar)))


setup(cmdclass={"build_py": BuildPyWithJar})
