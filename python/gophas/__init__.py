"""Gophas for PySpark: Keras models trained on Spark with the math in Go.

Elephas' API over the Gophas Scala shim (through py4j)::

    from pyspark.sql import SparkSession
    import gophas
    from gophas import SparkModel
    from gophas.utils.rdd_utils import to_simple_rdd

    spark = gophas.configure(SparkSession.builder).getOrCreate()
    rdd = to_simple_rdd(spark.sparkContext, x_train, y_train)
    spark_model = SparkModel(model, frequency="epoch", mode="asynchronous")
    spark_model.fit(rdd, epochs=10, batch_size=64, verbose=1)

Importing the package loads neither numpy nor Keras; both are imported when
first needed.
"""

from gophas import callbacks
from gophas.context import SPARK_LINES, configure, jar_path, readable_console
from gophas.errors import GophasError
from gophas.network import Network
from gophas.spark_model import History, SparkModel, load_spark_model
from gophas.utils.rdd_utils import from_data_frame, to_data_frame, to_simple_rdd

__version__ = "0.1.0"

__all__ = [
    "SparkModel",
    "History",
    "Network",
    "load_spark_model",
    "GophasError",
    "configure",
    "jar_path",
    "SPARK_LINES",
    "readable_console",
    "to_simple_rdd",
    "to_data_frame",
    "from_data_frame",
    "callbacks",
]


def _register_ml_alias() -> None:
    """Lets PySpark find the Python wrappers of the Scala stages.

    ``PipelineModel.load`` imports a Java stage's wrapper from the module
    named like its Java package, ``io.gophas.spark.ml``, which cannot be a
    real package (``io`` is the standard library). This registers a module
    under that name that imports :mod:`gophas.ml` (and pyspark.ml) only when
    one of its names is asked for.
    """
    import sys
    import types

    name = "io.gophas.spark.ml"
    if name in sys.modules:
        return

    class _Alias(types.ModuleType):
        def __getattr__(self, attr: str):
            import importlib

            return getattr(importlib.import_module("gophas.ml"), attr)

    sys.modules[name] = _Alias(name, "gophas.ml under the name of its Scala package")


_register_ml_alias()
