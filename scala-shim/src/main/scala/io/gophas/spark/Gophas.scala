package io.gophas.spark

import org.apache.spark.ml.functions.{array_to_vector, vector_to_array}
import org.apache.spark.ml.linalg.SQLDataTypes.VectorType
import org.apache.spark.sql.{Column, DataFrame}
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.functions.col
import org.apache.spark.sql.types._

/**
 * Gophas is the low-level entry to the executor pipe: it runs a
 * `gophas worker` per partition over a DataFrame and returns what the
 * workers answer, distributed, without collecting anything to the driver.
 */
object Gophas {

  /** The schema of `describe`'s answer: one row per feature (and label) column of each partition. */
  val DescribeSchema: StructType = Protocol.DescribeSchema

  /**
   * Pipes every partition of df through a worker in the given mode:
   *  - `echo`: the rows come back unchanged (ML vector columns travel as
   *    arrays of doubles and come back as dense vectors), partition by
   *    partition, in order; a diagnostic and the throughput probe;
   *  - `describe`: per partition, the features (and label) as training will
   *    read them, summarized per feature: count, sum, min, max, mean.
   */
  def pipe(df: DataFrame, mode: String): DataFrame =
    pipe(df, mode, Protocol.DefaultFeaturesCol, Protocol.DefaultLabelCol)

  def pipe(df: DataFrame, mode: String, featuresCol: String, labelCol: String): DataFrame = mode match {
    case Protocol.ModeEcho =>
      val (prepared, vectors) = vectorsToArrays(df)
      val out = run(prepared, prepared.schema, Protocol.EchoHeader(common(GophasConf.settings(df.sparkSession))))
      if (vectors.isEmpty) out
      else out.select(out.columns.map(c => if (vectors.contains(c)) array_to_vector(col(c)).as(c) else col(c)).toIndexedSeq: _*)
    case Protocol.ModeDescribe =>
      requireColumn(df, featuresCol, "features")
      val cols = featuresCol +: (if (df.columns.contains(labelCol)) Seq(labelCol) else Nil)
      val (prepared, _) = vectorsToArrays(df.select(cols.map(col): _*))
      run(prepared, DescribeSchema, Protocol.DescribeHeader(common(GophasConf.settings(df.sparkSession)), featuresCol, labelCol))
    case other =>
      throw new GophasException(s"unknown pipe mode '$other': use '${Protocol.ModeEcho}' or '${Protocol.ModeDescribe}'")
  }

  private[spark] def requireColumn(df: DataFrame, name: String, role: String): Unit =
    if (!df.columns.contains(name))
      throw new GophasException(s"$role column '$name' is not in the DataFrame; its columns are ${df.columns.mkString(", ")}")

  /** ML vectors travel as array<double>; returns the names of the converted columns. */
  private[spark] def vectorsToArrays(df: DataFrame): (DataFrame, Set[String]) = {
    val vectors = df.schema.fields.collect { case f if f.dataType == VectorType => f.name }.toSet
    if (vectors.isEmpty) (df, vectors)
    else {
      val cols: Seq[Column] = df.schema.fields.toIndexedSeq.map { f =>
        if (vectors.contains(f.name)) vector_to_array(col(f.name), "float64").as(f.name) else col(f.name)
      }
      (df.select(cols: _*), vectors)
    }
  }

  /**
   * Runs a worker per partition of df with the given header, completed for each partition by perTask on the
   * executor (the model's local directory, the worker's name); the answer must match outSchema.
   */
  private[spark] def run(df: DataFrame, outSchema: StructType, header: Protocol.Header,
      perTask: Int => Protocol.Header => Protocol.Header = _ => h => h): DataFrame = {
    val spark = df.sparkSession
    val settings = GophasConf.settings(spark)
    val inSchema = df.schema
    val line = SparkLine.get
    val rows = line.internalRows(df).mapPartitionsWithIndex { (partition, input) =>
      task(settings, inSchema, outSchema, perTask(partition)(header), partition, input)
    }
    line.createDataFrame(spark, rows, outSchema)
  }

  /** The header fields every task of a job shares. */
  private[spark] def common(settings: GophasConf.Settings): Protocol.Common =
    Protocol.Common(settings.batchRows, settings.ioTimeoutMs)

  /** Runs one worker over one partition's rows, on an executor; returns its answer's rows. */
  private[spark] def task(settings: GophasConf.Settings, inSchema: StructType, outSchema: StructType,
      header: Protocol.Header, partition: Int, input: Iterator[InternalRow]): Iterator[InternalRow] = {
    val binary = GophasBinary.get(settings.binary, settings.unpackDir)
    val context = org.apache.spark.TaskContext.get()
    val h = new java.util.LinkedHashMap[String, Any]()
    header.forTask(partition, if (context != null) math.max(1, context.cpus()) else 0).fields.foreach { case (k, v) => h.put(k, v) }
    val runner = new WorkerRunner(binary, h, settings.ioTimeoutMs, context)
    val line = SparkLine.get
    runner.run(
      out => line.writeArrow(input, inSchema, settings.batchRows, settings.batchBytes, out),
      in => line.readArrow(in, outSchema))
  }
}
