package org.apache.spark.sql.gophas

import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.unsafe.types.{GeographyVal, GeometryVal, VariantVal}

/** The getters Spark 4.1's InternalRow declares beyond those ForwardingRow forwards, answered from inner. */
private[gophas] abstract class LineGetters extends InternalRow {
  protected def inner: InternalRow
  override def getVariant(ordinal: Int): VariantVal = inner.getVariant(ordinal)
  override def getGeography(ordinal: Int): GeographyVal = inner.getGeography(ordinal)
  override def getGeometry(ordinal: Int): GeometryVal = inner.getGeometry(ordinal)
}
