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

from gophas.context import configure, jar_path
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
    "to_simple_rdd",
    "to_data_frame",
    "from_data_frame",
]
