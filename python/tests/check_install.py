"""Checks an installed gophas package (run by `make test-python-install` with
the scratch venv's python, once per Spark line it names): the package
carries every Spark line's jar, gophas.configure picks the one for the
running Spark, and a session started with it reaches the shim and the Go
kernel.

    python check_install.py DIST SPEC
"""

import json
import os
import sys


def main(dist: str, spec_path: str) -> None:
    import gophas
    from pyspark.version import __version__

    packed = os.path.join(os.path.dirname(gophas.__file__), "jars")
    for line, scala in gophas.SPARK_LINES.items():
        names = [j for j in os.listdir(packed) if j.startswith(f"gophas-spark-{line}_{scala}-")]
        if len(names) != 1:
            sys.exit(f"check_install: the package holds {names} for Spark {line} in {packed}; want one jar")
        built = os.path.join(dist, names[0])
        if os.path.getsize(os.path.join(packed, names[0])) != os.path.getsize(built):
            sys.exit(f"check_install: {names[0]} in {packed} is not a copy of {built}")
    jar = gophas.jar_path()
    line = ".".join(__version__.split(".")[:2])
    if not jar.startswith(packed + os.sep) or not os.path.basename(jar).startswith(f"gophas-spark-{line}_"):
        sys.exit(f"check_install: for Spark {__version__} the package chose {jar}")
    from pyspark.sql import SparkSession

    spark = gophas.configure(SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")).getOrCreate()
    try:
        with open(spec_path) as f:
            model = gophas.SparkModel(json.load(f))
        print(f"pip install ./python on Spark {__version__}: {gophas.__file__}, jar {os.path.basename(jar)}; "
              f"the shim answered: {model}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
