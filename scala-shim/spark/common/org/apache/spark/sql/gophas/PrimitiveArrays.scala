package org.apache.spark.sql.gophas

import org.apache.arrow.memory.ArrowBuf
import org.apache.arrow.vector.{BaseFixedWidthVector, BitVectorHelper}
import org.apache.arrow.vector.complex.ListVector
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData
import org.apache.spark.sql.catalyst.util.{ArrayData, MapData}
import org.apache.spark.sql.types.{ArrayType, DataType, Decimal, DoubleType, FloatType}
import org.apache.spark.sql.vectorized.ColumnarBatch
import org.apache.spark.unsafe.Platform
import org.apache.spark.unsafe.types.{CalendarInterval, UTF8String}

/**
 * Bulk copies for the columns that carry features: arrays of float or
 * double. Spark's Arrow converters move such arrays one element at a time
 * through virtual calls; here a null-free array moves as one memory copy
 * between Spark's UnsafeArrayData and Arrow's buffers, which is what makes
 * the pipe faster than PySpark's Arrow path. Anything else (a null element,
 * an array that is not unsafe) takes the element-wise path.
 */
private[gophas] object PrimitiveArrays {

  /** The element size when dt is an array of float or double, else 0. */
  def elementSize(dt: DataType): Int = dt match {
    case ArrayType(FloatType, _) => 4
    case ArrayType(DoubleType, _) => 8
    case _ => 0
  }

  /** True when none of the first n elements of u is null. */
  def noNulls(u: UnsafeArrayData, n: Int): Boolean = {
    val base = u.getBaseObject
    val bits = u.getBaseOffset + 8
    var w = 0
    val words = (n + 63) / 64
    while (w < words) {
      if (Platform.getLong(base, bits + w * 8L) != 0) return false
      w += 1
    }
    true
  }

  /** Sets bits [from, from+n) of an Arrow validity buffer. */
  def setBits(buf: ArrowBuf, from: Long, n: Long): Unit = {
    var i = from
    val end = from + n
    while (i < end && (i & 7) != 0) { BitVectorHelper.setBit(buf, i); i += 1 }
    val bytes = (end - i) / 8
    if (bytes > 0) { buf.setOne(i / 8, bytes); i += bytes * 8 }
    while (i < end) { BitVectorHelper.setBit(buf, i); i += 1 }
  }
}

/** array<float> or array<double> into a list vector, a memory copy per null-free row. */
private[gophas] final class PrimitiveArrayWriter(list: ListVector, elemSize: Int, ordinal: Int) {
  list.allocateNew()
  private val data = list.getDataVector.asInstanceOf[BaseFixedWidthVector]
  private var rows = 0
  private var elements = 0L

  /** Bytes written since the last reset. */
  def sizeInBytes: Long = elements * elemSize + rows * 4L

  def write(row: InternalRow): Unit = {
    if (!row.isNullAt(ordinal)) { // a null list keeps its validity bit clear, as Spark's ArrayWriter does
      val arr = row.getArray(ordinal)
      val n = arr.numElements()
      val off = list.startNewValue(rows)
      while (data.getValueCapacity < off + n) data.reAlloc()
      arr match {
        case u: UnsafeArrayData if PrimitiveArrays.noNulls(u, n) =>
          Platform.copyMemory(u.getBaseObject, u.getBaseOffset + UnsafeArrayData.calculateHeaderPortionInBytes(n),
            null, data.getDataBufferAddress + off.toLong * elemSize, n.toLong * elemSize)
          PrimitiveArrays.setBits(data.getValidityBuffer, off, n)
        case _ =>
          var i = 0
          while (i < n) {
            if (!arr.isNullAt(i)) {
              if (elemSize == 4) data.asInstanceOf[org.apache.arrow.vector.Float4Vector].set(off + i, arr.getFloat(i))
              else data.asInstanceOf[org.apache.arrow.vector.Float8Vector].set(off + i, arr.getDouble(i))
            }
            i += 1
          }
      }
      list.endValue(rows, n)
      elements += n
    }
    rows += 1
  }

  def finish(): Unit = list.setValueCount(rows)

  def reset(): Unit = {
    list.reset()
    rows = 0
    elements = 0
  }
}

/**
 * A row of a ColumnarBatch whose float/double array columns are handed out
 * as UnsafeArrayData made by one memory copy, so that an UnsafeProjection
 * copies them whole instead of element by element. Valid until the next
 * call to at().
 */
private[gophas] final class BulkArrayRow(batch: ColumnarBatch, lists: Array[ListVector], elemSizes: Array[Int]) extends ForwardingRow {
  private var current: InternalRow = _
  override protected def inner: InternalRow = current
  private var rowId = 0
  private val buffers = Array.fill(lists.length)(new Array[Byte](0))
  private val arrays = Array.fill(lists.length)(new UnsafeArrayData)
  private val bulk = new Array[Boolean](lists.length)

  /** Call once per loaded batch: which columns can be copied whole. */
  def loaded(): Unit = {
    var i = 0
    while (i < lists.length) {
      bulk(i) = lists(i) != null && lists(i).getDataVector.getNullCount == 0
      i += 1
    }
  }

  def at(row: InternalRow, id: Int): InternalRow = { current = row; rowId = id; this }

  override def getArray(ordinal: Int): ArrayData = {
    if (!bulk(ordinal) || inner.isNullAt(ordinal)) return inner.getArray(ordinal)
    val list = lists(ordinal)
    val size = elemSizes(ordinal)
    val offsets = list.getOffsetBuffer
    val start = offsets.getInt(rowId.toLong * 4)
    val n = offsets.getInt((rowId + 1L) * 4) - start
    val header = UnsafeArrayData.calculateHeaderPortionInBytes(n)
    val total = header + ((n.toLong * size + 7) / 8 * 8).toInt
    if (buffers(ordinal).length < total) buffers(ordinal) = new Array[Byte](math.max(total, buffers(ordinal).length * 2))
    val buf = buffers(ordinal)
    java.util.Arrays.fill(buf, 0, header, 0.toByte)
    Platform.putLong(buf, Platform.BYTE_ARRAY_OFFSET, n.toLong)
    val data = list.getDataVector.asInstanceOf[BaseFixedWidthVector]
    Platform.copyMemory(null, data.getDataBufferAddress + start.toLong * size, buf, Platform.BYTE_ARRAY_OFFSET + header, n.toLong * size)
    val a = arrays(ordinal)
    a.pointTo(buf, Platform.BYTE_ARRAY_OFFSET, total)
    a
  }

  override def numFields: Int = batch.numCols()
  override def get(ordinal: Int, dataType: DataType): AnyRef =
    if (PrimitiveArrays.elementSize(dataType) > 0) getArray(ordinal) else inner.get(ordinal, dataType)
}

/**
 * An InternalRow whose getters answer from inner, a row that changes as the
 * reader moves on; the getters that only some Spark lines declare come from
 * LineGetters (scala-shim/spark/v<line>).
 */
private[gophas] abstract class ForwardingRow extends LineGetters {
  override def numFields: Int = inner.numFields
  override def setNullAt(i: Int): Unit = throw new UnsupportedOperationException
  override def update(i: Int, value: Any): Unit = throw new UnsupportedOperationException
  override def copy(): InternalRow = inner.copy()
  override def isNullAt(ordinal: Int): Boolean = inner.isNullAt(ordinal)
  override def getBoolean(ordinal: Int): Boolean = inner.getBoolean(ordinal)
  override def getByte(ordinal: Int): Byte = inner.getByte(ordinal)
  override def getShort(ordinal: Int): Short = inner.getShort(ordinal)
  override def getInt(ordinal: Int): Int = inner.getInt(ordinal)
  override def getLong(ordinal: Int): Long = inner.getLong(ordinal)
  override def getFloat(ordinal: Int): Float = inner.getFloat(ordinal)
  override def getDouble(ordinal: Int): Double = inner.getDouble(ordinal)
  override def getDecimal(ordinal: Int, precision: Int, scale: Int): Decimal = inner.getDecimal(ordinal, precision, scale)
  override def getUTF8String(ordinal: Int): UTF8String = inner.getUTF8String(ordinal)
  override def getBinary(ordinal: Int): Array[Byte] = inner.getBinary(ordinal)
  override def getInterval(ordinal: Int): CalendarInterval = inner.getInterval(ordinal)
  override def getStruct(ordinal: Int, numFields: Int): InternalRow = inner.getStruct(ordinal, numFields)
  override def getArray(ordinal: Int): ArrayData = inner.getArray(ordinal)
  override def getMap(ordinal: Int): MapData = inner.getMap(ordinal)
  override def get(ordinal: Int, dataType: DataType): AnyRef = inner.get(ordinal, dataType)
}
