package io.gophas.spark

import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path, Paths}

import org.apache.spark.ml.{Pipeline, PipelineModel}
import org.apache.spark.ml.feature.{StandardScaler, VectorAssembler}
import org.apache.spark.ml.functions.vector_to_array
import org.apache.spark.ml.linalg.Vector
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions._
import org.scalatest.BeforeAndAfterAll
import org.scalatest.funsuite.AnyFunSuite

import io.gophas.spark.examples.Mnist
import io.gophas.spark.ml.GophasEstimator

/**
 * The smoke suite every Spark line runs on its own Spark (a local[2]
 * session of the line's pyspark jars, `make test-smoke-scala`): the pipe
 * (echo and describe), a 2-epoch fit of the MNIST MLP on a subset in
 * synchronous and asynchronous mode with predict, evaluate, save and load,
 * and a Spark ML Pipeline fit, save and load. The default line runs the
 * full suites besides.
 */
class SmokeSuite extends AnyFunSuite with BeforeAndAfterAll {
  import SmokeSuite._

  private var spark: SparkSession = _
  private var dir: Path = _
  private var train: DataFrame = _
  private var testSet: DataFrame = _

  override def beforeAll(): Unit = {
    dir = Files.createTempDirectory("gophas-smoke")
    spark = SparkSession.builder()
      .master("local[2]")
      .appName("SmokeSuite")
      .config("spark.ui.enabled", "false")
      .config("spark.sql.shuffle.partitions", "2")
      .config(GophasConf.UnpackDir, dir.toString)
      .getOrCreate()
    val data = Mnist.dir(None)
    train = Mnist.frame(spark, Mnist.read(data, train = true), 2, 0, TrainRows).cache()
    testSet = Mnist.frame(spark, Mnist.read(data, train = false), 2, 0, TestRows).cache()
  }

  override def afterAll(): Unit = if (spark != null) spark.stop()

  test("the jar's Spark line is the Spark that runs") {
    val line = SparkLine.get.line
    info(s"Spark ${org.apache.spark.SPARK_VERSION}, Scala ${scala.util.Properties.versionNumberString}, line $line")
    assert(org.apache.spark.SPARK_VERSION.startsWith(line + "."))
    sys.env.get("GOPHAS_SPARK_LINE").foreach(want => assert(line == want))
  }

  test("pipe: echo returns every row unchanged, describe sums to Spark's own aggregates") {
    val echoed = Gophas.pipe(train, Protocol.ModeEcho)
    assert(echoed.schema.map(f => (f.name, f.dataType)) == train.schema.map(f => (f.name, f.dataType)))
    val got = echoed.orderBy("id").collect()
    val want = train.orderBy("id").collect()
    assert(got.length == TrainRows && got.sameElements(want), "echo changed rows")

    val d = Gophas.pipe(train, Protocol.ModeDescribe).groupBy("name", "index")
      .agg(sum("count").as("count"), sum("sum").as("sum"), min("min").as("min"), max("max").as("max"))
      .collect().map(r => (r.getString(0), r.getInt(1)) -> r).toMap
    assert(d.size == Mnist.Width + 1, s"describe gave ${d.size} rows, want ${Mnist.Width} features and the label")
    val pixels = Seq(0, 350, 400, 783)
    val pixel = vector_to_array(col("features"))
    val sums = train.agg(sum(pixel.getItem(pixels.head)), pixels.tail.map(j => sum(pixel.getItem(j))) :+ sum(col("label")): _*).head()
    for ((j, i) <- pixels.zipWithIndex ++ Seq((-1, pixels.size))) {
      val (name, index) = if (j < 0) ("label", 0) else ("features", j)
      val r = d((name, index))
      val s = sums.getDouble(i)
      assert(r.getLong(2) == TrainRows, s"describe $name[$index] counted ${r.getLong(2)} rows")
      assert(math.abs(r.getDouble(3) - s) <= 1e-6 * math.max(1, math.abs(s)), s"describe $name[$index] sums to ${r.getDouble(3)}, Spark to $s")
    }
  }

  for (mode <- Seq(SparkModel.Synchronous, SparkModel.Asynchronous))
    test(s"$mode: a 2-epoch fit on an MNIST subset learns; predict, evaluate, save and load agree") {
      val m = SparkModel.fromSpec(spec(), seed = 7L, mode = mode, numWorkers = 2, batchSize = 64)
      val h = m.fit(train, epochs = Epochs)
      assert(h("loss").length == Epochs && h("loss").last < h("loss").head, s"$h")
      assert(m.lastServerStats.exists(s => s.mode == mode && s.workers.size == 2), s"${m.lastServerStats}")
      val scores = m.evaluate(testSet)
      info(f"$mode: test accuracy ${scores("accuracy")}%.4f after $Epochs epochs on $TrainRows rows")
      assert(scores("accuracy") >= SubsetAccuracy, f"$mode: accuracy ${scores("accuracy")}%.4f below $SubsetAccuracy")

      val predicted = m.predict(testSet, "scores").select(col("label"), col("scores")).collect()
      assert(predicted.length == TestRows)
      val hits = predicted.count(r => r.getAs[Vector](1).argmax.toDouble == r.getDouble(0))
      assert(math.abs(hits.toDouble / TestRows - scores("accuracy")) < 1e-9, s"predict gets $hits of $TestRows right; evaluate says ${scores("accuracy")}")

      val path = dir.resolve(s"model-$mode").toString
      m.save(path)
      val back = SparkModel.load(path).evaluate(testSet)
      assert(back == scores, s"the loaded model evaluates to $back, the saved one to $scores")
    }

  test("a Spark ML Pipeline with GophasEstimator fits, saves, loads and transforms the same") {
    val wine = spark.read.option("header", "true").option("inferSchema", "true").csv(repo.resolve("examples/data/wine.csv").toString)
    val parts = wine.randomSplit(Array(0.75, 0.25), seed = 42L)
    val (fitOn, check) = (parts(0).repartition(2).cache(), parts(1).cache())
    val estimator = new GophasEstimator().setModelSpec(read("examples/tabular/wine_mlp.json")).setLearningRate(0.01)
      .setEpochs(30).setBatchSize(16).setSeed(3L)
    val pipeline = new Pipeline().setStages(Array(
      new VectorAssembler().setInputCols(wine.columns.filterNot(_ == "label")).setOutputCol("raw"),
      new StandardScaler().setInputCol("raw").setOutputCol("features").setWithMean(true),
      estimator))
    val model = pipeline.fit(fitOn)
    val path = dir.resolve("wine-pipeline").toString
    model.write.overwrite().save(path)
    val loaded = PipelineModel.load(path)
    def predictions(m: PipelineModel) = m.transform(check).select("prediction").collect().map(_.getDouble(0)).toSeq
    val before = predictions(model)
    val accuracy = before.zip(check.select("label").collect().map(_.getAs[Number](0).doubleValue())).count { case (p, l) => p == l }.toDouble / before.size
    info(f"wine: accuracy $accuracy%.4f on ${before.size} rows")
    assert(accuracy >= WineAccuracy, f"wine accuracy $accuracy%.4f below $WineAccuracy")
    assert(predictions(loaded) == before, "the loaded pipeline predicts otherwise")
  }
}

object SmokeSuite {
  val TrainRows = 6000
  val TestRows = 2000
  val Epochs = 2
  /** Measured 0.8585 in both modes (2 epochs, 6000 rows, 2 workers, seed 7); 3 epochs reach 0.86-0.89 (SparkModelSuite). */
  val SubsetAccuracy = 0.8
  /** GophasMLSuite's bar on the same split (measured 1.0; one row is 2.6 points). */
  val WineAccuracy = 0.9

  val repo: Path = Seq(Paths.get("."), Paths.get(sys.env.getOrElse("GOPHAS_REPO", ".")))
    .find(p => Files.isDirectory(p.resolve("examples/data"))).getOrElse(Paths.get("."))

  def read(file: String): String = new String(Files.readAllBytes(repo.resolve(file)), StandardCharsets.UTF_8)

  def spec(): String = read("examples/mnist_mlp/model.json")
}
