package org.apache.spark.sql.gophas

import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.unsafe.types.{VariantVal}

/** The getters Spark 4.0's InternalRow declares beyond those ForwardingRow forwards, answered from inner. */
private[gophas] abstract class LineGetters extends InternalRow {
  protected def inner: InternalRow
  override def getVariant(ordinal: Int): VariantVal = inner.getVariant(ordinal)
}
