package io.gophas.spark.examples

import org.apache.spark.sql.SparkSession
import org.apache.spark.sql.functions._

import io.gophas.spark.{Gophas, ReadableConsole}

/**
 * PipeDemo pipes a generated DataFrame (rows × 784 float features and a
 * label) through `gophas worker` in echo and describe modes and prints the
 * throughput. Run by `make demo`:
 *
 * {{{
 * spark-submit --class io.gophas.spark.examples.PipeDemo gophas-spark-<line>_<scala>-<v>.jar [rows]
 * }}}
 */
object PipeDemo {
  def main(args: Array[String]): Unit = {
    val rows = args.headOption.map(_.toLong).getOrElse(200000L)
    val width = 784
    val spark = ReadableConsole(SparkSession.builder().appName("gophas pipe demo")).getOrCreate()
    val df = spark.range(0, rows, 1, spark.sparkContext.defaultParallelism)
      .select(
        transform(sequence(lit(0), lit(width - 1)), j => ((col("id") * 31 + j) % 1021).cast("float") / lit(7.0f)).as("features"),
        (col("id") % 10).cast("double").as("label"))
      .cache()
    // Generate once, so that the timings below measure the pipe, not the generator.
    val tg = System.nanoTime()
    df.count()
    println(f"generated and cached $rows rows x $width floats in ${(System.nanoTime() - tg) / 1e9}%.2f s")

    val t0 = System.nanoTime()
    val n = Gophas.pipe(df, "echo").count()
    val secs = (System.nanoTime() - t0) / 1e9
    val mb = n * (width * 4 + 8) / 1e6
    println(f"echo: $n rows x $width floats through gophas in $secs%.2f s: ${n / secs}%,.0f rows/s, ${mb / secs}%,.0f MB/s")

    val t1 = System.nanoTime()
    val summary = Gophas.pipe(df, "describe")
      .groupBy("name", "index")
      .agg(sum("count").as("count"), sum("sum").as("sum"), min("min").as("min"), max("max").as("max"))
      .withColumn("mean", col("sum") / col("count"))
      .orderBy("name", "index")
    val first = summary.limit(3).collect()
    println(f"describe: ${summary.count()} feature and label columns summarized in ${(System.nanoTime() - t1) / 1e9}%.2f s; first: ")
    first.foreach(r => println(f"  ${r.getString(0)}[${r.getInt(1)}] count ${r.getLong(2)} min ${r.getDouble(4)}%.4f max ${r.getDouble(5)}%.4f mean ${r.getDouble(6)}%.4f"))
    spark.stop()
  }
}
