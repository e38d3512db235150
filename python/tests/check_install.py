"""Checks an installed gophas package (run by `make test-python-install` with
the scratch venv's python): the jar is packed inside it, and a session
started with gophas.configure reaches the shim and the Go kernel.

    python check_install.py JAR SPEC
"""

import json
import os
import sys


def main(jar_built: str, spec_path: str) -> None:
    import gophas

    jar = gophas.jar_path()
    if not jar.startswith(sys.prefix) or os.path.getsize(jar) != os.path.getsize(jar_built):
        sys.exit(f"check_install: the package's jar is {jar}, not a copy of {jar_built} inside {sys.prefix}")
    from pyspark.sql import SparkSession

    spark = gophas.configure(SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")).getOrCreate()
    try:
        with open(spec_path) as f:
            model = gophas.SparkModel(json.load(f))
        print(f"pip install ./python: {gophas.__file__}, jar {jar}; the shim answered: {model}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
