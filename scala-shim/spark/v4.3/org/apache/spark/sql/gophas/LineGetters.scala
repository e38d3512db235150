package org.apache.spark.sql.gophas

import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.unsafe.types.{BinaryView, TimestampNanosVal, VariantVal}

/** The getters Spark 4.3's InternalRow declares beyond those ForwardingRow forwards, answered from inner. */
private[gophas] abstract class LineGetters extends InternalRow {
  protected def inner: InternalRow
  override def getVariant(ordinal: Int): VariantVal = inner.getVariant(ordinal)
  override def getBinaryView(ordinal: Int): BinaryView = inner.getBinaryView(ordinal)
  override def getTimestampNTZNanos(ordinal: Int): TimestampNanosVal = inner.getTimestampNTZNanos(ordinal)
  override def getTimestampLTZNanos(ordinal: Int): TimestampNanosVal = inner.getTimestampLTZNanos(ordinal)
}
