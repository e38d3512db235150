package org.apache.spark.sql.gophas

import java.io.{InputStream, OutputStream}
import java.nio.channels.Channels

import scala.jdk.CollectionConverters._

import org.apache.arrow.vector.VectorSchemaRoot
import org.apache.arrow.vector.ipc.{ArrowStreamReader, ArrowStreamWriter}
import org.apache.spark.TaskContext
import org.apache.spark.rdd.RDD
import org.apache.spark.sql.{DataFrame, Row, SparkSession}
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection
import org.apache.spark.sql.execution.arrow.ArrowWriter
import org.apache.spark.sql.types.StructType
import org.apache.spark.sql.util.ArrowUtils
import org.apache.spark.sql.vectorized.{ArrowColumnVector, ColumnarBatch}

import io.gophas.spark.GophasException

/**
 * ArrowBatches converts between Spark's internal rows and Arrow IPC streams,
 * with Spark's own Arrow converters (the ones PySpark's Arrow UDFs use).
 * It lives in Spark's package because those converters are `private[sql]`;
 * nothing else of the shim does. Not a public API: it may change with any release.
 */
object ArrowBatches {

  /** The rows of a DataFrame, without converting them to external Rows. */
  def internalRows(df: DataFrame): RDD[InternalRow] =
    df.asInstanceOf[org.apache.spark.sql.classic.Dataset[Row]].queryExecution.toRdd

  /** A DataFrame over internal rows that already match schema. */
  def createDataFrame(spark: SparkSession, rows: RDD[InternalRow], schema: StructType): DataFrame =
    spark.asInstanceOf[org.apache.spark.sql.classic.SparkSession].internalCreateDataFrame(rows, schema, isStreaming = false)

  /**
   * Writes rows as one Arrow IPC stream: batches of at most batchRows rows,
   * cut early once a batch holds batchBytes.
   */
  def write(rows: Iterator[InternalRow], schema: StructType, batchRows: Int, batchBytes: Long, out: OutputStream): Unit = {
    val allocator = ArrowUtils.rootAllocator.newChildAllocator("gophas input", 0, Long.MaxValue)
    val root = VectorSchemaRoot.create(ArrowUtils.toArrowSchema(schema, "UTC", true, false), allocator)
    try {
      val writer = ArrowWriter.create(root)
      val stream = new ArrowStreamWriter(root, null, Channels.newChannel(out))
      stream.start()
      var n = 0
      def flush(): Unit = {
        writer.finish()
        stream.writeBatch()
        writer.reset()
        n = 0
      }
      while (rows.hasNext) {
        writer.write(rows.next())
        n += 1
        if (n >= batchRows || ((n & 31) == 0 && writer.sizeInBytes() >= batchBytes)) flush()
      }
      if (n > 0) flush()
      stream.end()
      out.flush()
    } finally {
      root.close()
      allocator.close()
    }
  }

  /**
   * Reads one Arrow IPC stream whose schema must equal expected, as rows.
   * Each returned row is valid until the next call to next(), as in Spark's
   * own operators.
   */
  def read(in: InputStream, expected: StructType): Iterator[InternalRow] = new Iterator[InternalRow] {
    private var closed = false
    private val allocator = ArrowUtils.rootAllocator.newChildAllocator("gophas output", 0, Long.MaxValue)
    private val reader = new ArrowStreamReader(in, allocator)
    private val root = try reader.getVectorSchemaRoot catch {
      case e: Throwable => close(); throw e
    }
    checkSchema()
    private val batch = new ColumnarBatch(root.getFieldVectors.asScala.map(v => new ArrowColumnVector(v): org.apache.spark.sql.vectorized.ColumnVector).toArray)
    private val project = UnsafeProjection.create(expected)
    private var rows: Iterator[InternalRow] = Iterator.empty
    Option(TaskContext.get()).foreach(_.addTaskCompletionListener[Unit](_ => close()))

    private def checkSchema(): Unit = {
      val got = ArrowUtils.fromArrowSchema(root.getSchema)
      val same = got.length == expected.length && got.fields.zip(expected.fields).forall {
        case (g, e) => g.dataType.sameType(e.dataType)
      }
      if (!same) {
        close()
        throw new GophasException(s"worker answered with schema ${got.simpleString}, expected ${expected.simpleString}")
      }
    }

    private def close(): Unit = if (!closed) {
      closed = true
      reader.close(false)
      allocator.close()
    }

    override def hasNext: Boolean = {
      while (!rows.hasNext && !closed) {
        if (reader.loadNextBatch()) {
          batch.setNumRows(root.getRowCount)
          rows = batch.rowIterator().asScala
        } else close()
      }
      rows.hasNext
    }

    override def next(): InternalRow = {
      if (!hasNext) throw new NoSuchElementException("end of the worker's output")
      project(rows.next())
    }
  }
}
