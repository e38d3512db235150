"""Elephas' data helpers: numpy arrays to Spark RDDs and DataFrames and back."""

from gophas.utils.rdd_utils import from_data_frame, to_data_frame, to_simple_rdd

__all__ = ["to_simple_rdd", "to_data_frame", "from_data_frame"]
