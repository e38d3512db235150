package org.apache.spark.sql.gophas

import java.io.{InputStream, OutputStream}
import java.nio.channels.Channels

import scala.jdk.CollectionConverters._

import org.apache.arrow.vector.VectorSchemaRoot
import org.apache.arrow.vector.complex.ListVector
import org.apache.arrow.vector.ipc.{ArrowStreamReader, ArrowStreamWriter}
import org.apache.spark.TaskContext
import org.apache.spark.sql.catalyst.{InternalRow, ProjectingInternalRow}
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection
import org.apache.spark.sql.execution.arrow.ArrowWriter
import org.apache.spark.sql.types.StructType
import org.apache.spark.sql.util.ArrowUtils
import org.apache.spark.sql.vectorized.{ArrowColumnVector, ColumnarBatch}

import io.gophas.spark.GophasException

/**
 * ArrowBatches converts between Spark's internal rows and Arrow IPC streams,
 * with Spark's own Arrow converters (the ones PySpark's Arrow UDFs use) and
 * bulk copies for float and double arrays (PrimitiveArrays). It lives in
 * Spark's package because those converters are `private[sql]`, and it is
 * compiled against each Spark line (scala-shim/spark/common).
 */
private[gophas] object ArrowBatches {

  /**
   * Writes rows as one Arrow IPC stream: batches of at most batchRows rows,
   * cut early once a batch holds batchBytes.
   */
  def write(rows: Iterator[InternalRow], schema: StructType, batchRows: Int, batchBytes: Long, out: OutputStream): Unit = {
    val allocator = ArrowUtils.rootAllocator.newChildAllocator("gophas input", 0, Long.MaxValue)
    val root = VectorSchemaRoot.create(ArrowUtils.toArrowSchema(schema, "UTC", errorOnDuplicatedFieldNames = true, largeVarTypes = false), allocator)
    try {
      val vectors = root.getFieldVectors.asScala.toArray
      val sizes = schema.fields.map(f => PrimitiveArrays.elementSize(f.dataType))
      val bulk = vectors.indices.filter(i => sizes(i) > 0 && vectors(i).isInstanceOf[ListVector])
      val arrays = bulk.map(i => new PrimitiveArrayWriter(vectors(i).asInstanceOf[ListVector], sizes(i), i)).toArray
      // Every other column goes through Spark's writer, over a view of just those columns.
      val others = vectors.indices.filterNot(bulk.contains)
      val generic = if (others.isEmpty) None else Some((
        ArrowWriter.create(new VectorSchemaRoot(others.map(vectors(_)).asJava)),
        ProjectingInternalRow(StructType(others.map(schema(_))), others)))
      val stream = new ArrowStreamWriter(root, null, Channels.newChannel(out))
      stream.start()
      var n = 0
      def flush(): Unit = {
        arrays.foreach(_.finish())
        generic.foreach(_._1.finish())
        root.setRowCount(n)
        stream.writeBatch()
        arrays.foreach(_.reset())
        generic.foreach(_._1.reset())
        n = 0
      }
      def bytes: Long = arrays.foldLeft(0L)(_ + _.sizeInBytes) + generic.map(g => Internals.sizeInBytes(g._1)).getOrElse(0L)
      while (rows.hasNext) {
        val row = rows.next()
        var i = 0
        while (i < arrays.length) { arrays(i).write(row); i += 1 }
        generic.foreach { case (w, view) => view.project(row); w.write(view) }
        n += 1
        if (n >= batchRows || ((n & 31) == 0 && bytes >= batchBytes)) flush()
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
    private val bulkRow = {
      val vectors = root.getFieldVectors.asScala.toArray
      val sizes = expected.fields.map(f => PrimitiveArrays.elementSize(f.dataType))
      val lists = vectors.zip(sizes).map {
        case (l: ListVector, s) if s > 0 => l
        case _ => null
      }
      new BulkArrayRow(batch, lists, sizes)
    }
    private var rowId = 0
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
          bulkRow.loaded()
          rowId = -1
          rows = batch.rowIterator().asScala
        } else close()
      }
      rows.hasNext
    }

    override def next(): InternalRow = {
      if (!hasNext) throw new NoSuchElementException("end of the worker's output")
      rowId += 1
      project(bulkRow.at(rows.next(), rowId))
    }
  }
}
