package io.gophas.spark

import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path, Paths}
import java.util.concurrent.ConcurrentLinkedQueue

import scala.concurrent.{Await, Future}
import scala.concurrent.ExecutionContext.Implicits.global
import scala.concurrent.duration._
import scala.jdk.CollectionConverters._

import org.apache.spark.ml.functions.vector_to_array
import org.apache.spark.ml.linalg.Vector
import org.apache.spark.scheduler.{SparkListener, SparkListenerJobStart}
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions._
import org.scalatest.BeforeAndAfterAll
import org.scalatest.funsuite.AnyFunSuite

import io.gophas.spark.examples.Mnist

/**
 * SparkModel on a real local Spark (local[2]) with the real binary and MNIST
 * subsets: every mode and frequency, predict, evaluate, save and load, bad
 * input, cancellation. The multi-JVM and fault-injection checks run from
 * the Go integration tests (SparkModelScenarios).
 */
class SparkModelSuite extends AnyFunSuite with BeforeAndAfterAll {
  private var spark: SparkSession = _
  private var dir: Path = _
  private var train: DataFrame = _
  private var testSet: DataFrame = _
  private var spec: String = _
  private val jobs = new ConcurrentLinkedQueue[String]()

  override def beforeAll(): Unit = {
    dir = Files.createTempDirectory("gophas-sparkmodel-suite")
    spark = SparkSession.builder()
      .master("local[2]")
      .appName("SparkModelSuite")
      .config("spark.ui.enabled", "false")
      .config("spark.sql.shuffle.partitions", "4")
      .config(GophasConf.UnpackDir, dir.toString)
      .getOrCreate()
    spark.sparkContext.addSparkListener(new SparkListener {
      override def onJobStart(e: SparkListenerJobStart): Unit =
        jobs.add(Option(e.properties).flatMap(p => Option(p.getProperty("spark.job.description"))).getOrElse(""))
    })
    val data = Mnist.dir(None)
    train = Mnist.frame(spark, Mnist.read(data, train = true), 2, 0, SparkModelScenarios.TrainRows).cache()
    testSet = Mnist.frame(spark, Mnist.read(data, train = false), 2, 0, SparkModelScenarios.TestRows).cache()
    spec = SparkModelScenarios.mlpSpec()
  }

  override def afterAll(): Unit = if (spark != null) spark.stop()

  private def model(mode: String = SparkModel.Asynchronous, frequency: String = SparkModel.Epoch, workers: Int = 0) =
    SparkModel.fromSpec(spec, seed = 7L, mode = mode, frequency = frequency, numWorkers = workers, batchSize = 64)

  for (mode <- SparkModel.Modes; frequency <- SparkModel.Frequencies)
    test(s"$mode, every $frequency: an MNIST subset trains past the measured bar, and the server ran that mode") {
      val m = model(mode, frequency)
      val before = jobs.size
      val h = m.fit(train, epochs = SparkModelScenarios.Epochs)
      val descriptions = jobs.asScala.drop(before).toSeq
      assert((1 to SparkModelScenarios.Epochs).forall(e => descriptions.contains(s"gophas fit epoch $e/${SparkModelScenarios.Epochs}")),
        s"job descriptions: $descriptions")
      assert(h.history.keys.toSeq == Seq("loss", "accuracy"))
      assert(h("loss").length == SparkModelScenarios.Epochs && h("loss").last < h("loss").head, s"$h")
      assert(h.workers.keys.toSeq == Seq("partition-0", "partition-1"))
      val stats = m.lastServerStats.get
      assert(stats.mode == mode && stats.frequency == frequency, s"$stats")
      assert(stats.workers.map(_.worker).sorted == Seq("partition-0", "partition-1"), s"$stats")
      assert(stats.workers.forall(w => w.applied > 0 && w.refused == 0 && w.duplicate == 0), s"$stats")
      val acc = m.evaluate(testSet)("accuracy")
      info(f"$mode/$frequency: test accuracy $acc%.4f, history $h")
      assert(acc >= SparkModelScenarios.SubsetAccuracy, f"$mode/$frequency: accuracy $acc%.4f below ${SparkModelScenarios.SubsetAccuracy}")
    }

  test("a validation split adds val_ keys, and a second fit continues from the trained weights") {
    val m = model()
    val h1 = m.fit(train, epochs = 1, validationSplit = 0.2, seed = 3L)
    assert(h1.history.keys.toSeq == Seq("loss", "accuracy", "val_loss", "val_accuracy"), s"$h1")
    assert(h1("val_accuracy").head > 0.5, s"$h1")
    val first = m.masterNetwork
    val acc1 = m.evaluate(testSet)("accuracy")
    val h2 = m.fit(train, epochs = 1)
    assert(m.masterNetwork != first)
    assert(h2("loss").head < h1("loss").head, s"second fit did not continue: $h1 then $h2")
    assert(m.evaluate(testSet)("accuracy") >= acc1 - 0.01)
  }

  test("a fit accounts for its time by phase: lastFitPhases, and a line at verbose 2") {
    val m = model()
    val out = new java.io.ByteArrayOutputStream()
    Console.withOut(out) { m.fit(train, epochs = 2, validationSplit = 0.2, verbose = 2) }
    val p = m.lastFitPhases
    val want = Seq("inspect the model", "check and cache the data", "wait for the parameter server", "load the model", "epoch jobs",
      "validation", "merge the metrics", "save the trained model", "total")
    assert(p.keys.toSeq == want, s"phases: $p")
    assert(p.values.forall(_ >= 0), s"phases: $p")
    // The phases are disjoint parts of the fit: together no longer than it.
    assert((p - "total").values.sum <= p("total") + 1e-6, s"phases: $p")
    val printed = out.toString("UTF-8").linesIterator.filter(_.startsWith("gophas fit: ")).toSeq.filter(_.contains("outside them"))
    assert(printed.size == 1 && printed.head.contains("check and cache the data") && printed.head.contains("in the epochs' Spark jobs"),
      s"stdout: $out")
    info(printed.head)
  }

  test("predict appends a probability vector, keeps columns and order; save, load, predict again: identical") {
    val m = model()
    m.fit(train, epochs = 1)
    val input = testSet.withColumn("extra", col("id") * 2)
    val out = m.predict(input)
    assert(out.columns.toSeq == input.columns.toSeq :+ "prediction")
    val rows = out.collect()
    assert(rows.map(_.getLong(0)).toSeq == input.select("id").collect().map(_.getLong(0)).toSeq, "row order changed")
    rows.foreach { r =>
      val p = r.getAs[Vector]("prediction")
      assert(p.size == 10 && math.abs(p.toArray.sum - 1) < 1e-5, s"row ${r.getLong(0)}: $p")
      assert(r.getAs[Long]("extra") == r.getLong(0) * 2)
    }
    val path = dir.resolve("saved").toString
    m.save(path)
    val loaded = SparkModel.load(path)
    assert(loaded.masterNetwork == m.masterNetwork)
    val again = loaded.predict(input).collect()
    assert(again.map(_.getAs[Vector]("prediction")).toSeq == rows.map(_.getAs[Vector]("prediction")).toSeq)
    // Accuracy from predict agrees with evaluate's.
    val correct = rows.count(r => r.getAs[Vector]("prediction").argmax == r.getAs[Double]("label").toInt)
    assert(math.abs(correct.toDouble / rows.length - m.evaluate(testSet)("accuracy")) < 1e-9)
  }

  test("evaluate combines partitions exactly: one partition or five, the same loss and accuracy") {
    val m = model()
    val one = m.evaluate(testSet.coalesce(1))
    val five = m.evaluate(testSet.repartition(5))
    assert(one.keys.toSeq == Seq("loss", "accuracy"))
    one.foreach { case (k, v) => assert(math.abs(v - five(k)) <= 1e-9 * math.abs(v), s"$k: $v vs ${five(k)}") }
  }

  test("bad input fails with a GophasException before any training") {
    val m = model()
    def fails(df: DataFrame, featuresCol: String = "features", labelCol: String = "label"): String = {
      val before = jobs.size
      val e = intercept[GophasException](m.fit(df, epochs = 1, featuresCol = featuresCol, labelCol = labelCol))
      assert(!jobs.asScala.drop(before).exists(_.startsWith("gophas fit epoch")), s"training started for: ${e.getMessage}")
      e.getMessage
    }
    assert(fails(train, featuresCol = "pixels").contains("features column 'pixels' is not in the DataFrame"))
    assert(fails(train.drop("label")).contains("label column 'label' is not in the DataFrame"))
    val outOfRange = fails(train.withColumn("label", when(col("id") === 5, 10.0).otherwise(col("label"))))
    assert(outOfRange.contains("label column 'label' holds values from 0.0 to 10.0") && outOfRange.contains("0 to 9"), outOfRange)
    val narrow = train.withColumn("features", slice(vector_to_array(col("features")), 1, 780))
    val narrowed = fails(narrow)
    assert(narrowed.contains("features column 'features' row 0 holds 780 values; the network 'mnist_mlp' takes input shape (784,) = 784 values per row"), narrowed)
    val oneShort = fails(train.withColumn("features", when(col("id") === 3, slice(vector_to_array(col("features")), 1, 783))
      .otherwise(vector_to_array(col("features")))))
    assert(oneShort.contains("features column 'features' row 3 holds 783 values") && oneShort.contains("(the rows hold 783 to 784 values)"), oneShort)
    assert(fails(train.withColumn("features", lit("x"))).contains("features column 'features' has type string"))
    assert(intercept[GophasException](model(mode = "sync")).getMessage.contains("unknown mode 'sync'"))
  }

  test("synchronous mode with more workers than task slots fails at once, saying what to change") {
    val start = System.nanoTime()
    val e = intercept[GophasException](model(SparkModel.Synchronous, workers = 3).fit(train, epochs = 1))
    assert(e.getMessage.contains("runs all 3 workers at once, but the cluster has 2 task slots"), e.getMessage)
    assert((System.nanoTime() - start) / 1e9 < 60)
  }

  test("partitions smaller than a batch, and empty ones, all take part") {
    val small = train.limit(100).repartition(1).union(spark.createDataFrame(spark.sparkContext.emptyRDD[org.apache.spark.sql.Row], train.schema))
      .repartition(4) // some partitions may be empty; each holds fewer rows than a batch
    val m = model()
    val h = m.fit(small, epochs = 2)
    assert(h.workers.size == 4)
    val stats = m.lastServerStats.get
    assert(stats.workers.size == 4 && stats.workers.forall(_.done), s"$stats")
    val trained = h.workers.values.count(w => !w("loss").head.isNaN)
    assert(trained >= 1 && h("loss").forall(!_.isNaN), s"$h")
  }

  test("a cancelled fit leaves no gophas process, and the next fit works") {
    val m = model(frequency = SparkModel.Batch)
    val sc = spark.sparkContext
    val fit = Future {
      sc.setJobGroup("cancel-me", "a fit to cancel", interruptOnCancel = true)
      try m.fit(train, epochs = 50) finally sc.clearJobGroup()
    }
    val deadline = System.nanoTime() + 120L * 1000000000L
    while (SparkModelScenarios.gophasProcesses("worker").isEmpty && System.nanoTime() < deadline) Thread.sleep(50)
    assert(SparkModelScenarios.gophasProcesses("worker").nonEmpty, "no worker started")
    assert(SparkModelScenarios.gophasProcesses("driver").nonEmpty, "no parameter server running during the fit")
    sc.cancelJobGroup("cancel-me")
    intercept[Exception](Await.result(fit, 2.minutes))
    val gone = System.nanoTime() + 30L * 1000000000L
    while (SparkModelScenarios.gophasProcesses("").nonEmpty && System.nanoTime() < gone) Thread.sleep(100)
    assert(SparkModelScenarios.gophasProcesses("").isEmpty, s"left behind: ${SparkModelScenarios.gophasProcesses("")}")
    val h = m.fit(train, epochs = 1)
    assert(!h("loss").head.isNaN)
  }

  test("two SparkModels fitting at once have separate parameter servers") {
    val a = model()
    val b = model(frequency = SparkModel.Batch)
    val fa = Future(a.fit(train, epochs = 1))
    val fb = Future(b.fit(train, epochs = 1))
    Await.result(fa, 5.minutes)
    Await.result(fb, 5.minutes)
    assert(a.lastServerStats.get.frequency == "epoch" && b.lastServerStats.get.frequency == "batch")
    assert(a.lastServerStats.get.version < b.lastServerStats.get.version, "batch pushes should outnumber epoch pushes")
  }

  test("one worker, one seed: a Spark fit ends at the weights of gophas train (one loop, one shuffle; Model.Fit equals gophas train, tested in Go)") {
    // Generated rows of 4 features and a class index in [0, 3), in one partition, the order kept.
    val rng = new scala.util.Random(3)
    val rows = (0 until 157).map { _ =>
      val c = rng.nextInt(3)
      val x = Array.tabulate(4)(j => (if (j == c) 2.0 else if (j == (c + 1) % 4) -1.0 else 0.0) + rng.nextGaussian()).map(_.toFloat)
      (x, c)
    }
    val csv = dir.resolve("same-seed.csv")
    Files.write(csv, ("a,b,c,d,y\n" + rows.map { case (x, c) => x.map(_.toString).mkString(",") + s",$c" }.mkString("\n") + "\n")
      .getBytes(StandardCharsets.UTF_8))
    val schema = org.apache.spark.sql.types.StructType(Seq(
      org.apache.spark.sql.types.StructField("features", org.apache.spark.sql.types.ArrayType(org.apache.spark.sql.types.FloatType, containsNull = false)),
      org.apache.spark.sql.types.StructField("label", org.apache.spark.sql.types.DoubleType)))
    val df = spark.createDataFrame(spark.sparkContext.parallelize(rows.map { case (x, c) => org.apache.spark.sql.Row(x.toSeq, c.toDouble) }, 1), schema)
    val dropoutSpec = SparkModelScenarios.repoFile("internal/fixture/testdata/mlp_dropout.json")
    val (epochs, batch, seed) = (3, 16, 5L)

    val m = SparkModel.fromSpec(new String(Files.readAllBytes(dropoutSpec), StandardCharsets.UTF_8), seed = seed, batchSize = batch)
    m.fit(df, epochs = epochs, seed = seed)
    val spark1 = SafetensorsFile.read(m.masterNetwork.weights)

    val out = dir.resolve("same-seed-trained")
    val binary = GophasBinary.get(None, Some(dir.toString))
    val proc = new ProcessBuilder(binary.toString, "train", "--model", dropoutSpec.toString, "--data", csv.toString,
      "--epochs", epochs.toString, "--batch-size", batch.toString, "--seed", seed.toString, "--out", out.toString)
      .redirectErrorStream(true).start()
    val log = new String(proc.getInputStream.readAllBytes(), StandardCharsets.UTF_8)
    assert(proc.waitFor() == 0, log)
    val local = SafetensorsFile.read(Files.readAllBytes(out.resolve(GophasNetwork.WeightsFile)))

    assert(spark1.keys == local.keys)
    // Equal up to float32 rounding: the driver adds each epoch's delta (after - pulled) back to the pulled weights.
    val worst = spark1.keys.map(k => spark1(k).zip(local(k)).map { case (a, b) => math.abs(a - b).toDouble }.max).max
    assert(worst < 1e-5, s"largest difference $worst between the one-worker Spark fit and gophas train")
    val start = SafetensorsFile.read(SparkModel.fromSpec(new String(Files.readAllBytes(dropoutSpec), StandardCharsets.UTF_8), seed = seed)
      .masterNetwork.weights)
    val moved = start.keys.map(k => start(k).zip(local(k)).map { case (a, b) => math.abs(a - b).toDouble }.max).max
    assert(moved > 1e-2, s"training moved the weights by only $moved")
  }

  /** The SHA-256 of the certificate the server at address presents in a TLS handshake, or None when it speaks no TLS. */
  private def tlsCertificate(address: String): Option[String] = {
    val trustAll = new javax.net.ssl.X509TrustManager {
      def checkClientTrusted(c: Array[java.security.cert.X509Certificate], a: String): Unit = ()
      def checkServerTrusted(c: Array[java.security.cert.X509Certificate], a: String): Unit = ()
      def getAcceptedIssuers: Array[java.security.cert.X509Certificate] = Array.empty
    }
    val ctx = javax.net.ssl.SSLContext.getInstance("TLSv1.3")
    ctx.init(null, Array(trustAll), null)
    val i = address.lastIndexOf(':')
    val socket = ctx.getSocketFactory.createSocket(address.substring(0, i), address.substring(i + 1).toInt).asInstanceOf[javax.net.ssl.SSLSocket]
    socket.setSoTimeout(10000)
    val params = socket.getSSLParameters
    params.setApplicationProtocols(Array("h2"))
    socket.setSSLParameters(params)
    try {
      socket.startHandshake()
      val der = socket.getSession.getPeerCertificates()(0).getEncoded
      Some(java.security.MessageDigest.getInstance("SHA-256").digest(der).map(b => f"${b & 0xff}%02x").mkString)
    } catch { case _: java.io.IOException => None }
    finally socket.close()
  }

  test("the parameter server speaks TLS by default, pinned by its fingerprint; spark.gophas.tls=false opts out") {
    val binary = GophasBinary.get(None, Some(dir.toString))
    def start() = ParameterServer.start(binary, "127.0.0.1", SparkModel.Asynchronous, SparkModel.Epoch, 1, scale = false,
      GophasConf.fitSettings(spark).tls, 60000L, 30000L)
    assert(spark.conf.getOption(GophasConf.Tls).isEmpty)
    val secure = start()
    try {
      assert(secure.tlsFingerprint.matches("[0-9a-f]{64}"), s"fingerprint '${secure.tlsFingerprint}'")
      assert(tlsCertificate(secure.address).contains(secure.tlsFingerprint))
    } finally secure.stop()
    assert(!model().fit(train, epochs = 1)("loss").head.isNaN)

    spark.conf.set(GophasConf.Tls, "false")
    try {
      val plain = start()
      try {
        assert(plain.tlsFingerprint.isEmpty)
        assert(tlsCertificate(plain.address).isEmpty, "a TLS handshake succeeded with spark.gophas.tls=false")
      } finally plain.stop()
      assert(!model().fit(train, epochs = 1)("loss").head.isNaN)
    } finally spark.conf.unset(GophasConf.Tls)
  }

  test("a fit whose tasks cannot be launched fails after spark.gophas.ioTimeout, naming the stall, instead of waiting") {
    val sc = spark.sparkContext
    // Another job holds both task slots, so none of the fit's tasks can start.
    val blocker = Future {
      sc.setJobGroup("blocker", "holds every task slot", interruptOnCancel = true)
      try sc.parallelize(1 to 2, 2).foreach(_ => Thread.sleep(300000)) finally sc.clearJobGroup()
    }
    val deadline = System.nanoTime() + 60L * 1000000000L
    while (sc.statusTracker.getExecutorInfos.map(_.numRunningTasks).sum < 2 && System.nanoTime() < deadline) Thread.sleep(50)
    spark.conf.set(GophasConf.IoTimeout, "4s")
    try {
      val start = System.nanoTime()
      val e = intercept[GophasException](model().fit(train, epochs = 1))
      val seconds = (System.nanoTime() - start) / 1e9
      assert(e.getMessage.contains("while checking the data") && e.getMessage.contains("no task running") &&
        e.getMessage.contains(GophasConf.IoTimeout), e.getMessage)
      assert(seconds < 40, f"the stalled fit failed after $seconds%.1f s; want soon after 4 s")
    } finally {
      spark.conf.unset(GophasConf.IoTimeout)
      sc.cancelJobGroup("blocker")
    }
    intercept[Exception](Await.result(blocker, 1.minute))
    val gone = System.nanoTime() + 30L * 1000000000L
    while (SparkModelScenarios.gophasProcesses("").nonEmpty && System.nanoTime() < gone) Thread.sleep(100)
    assert(SparkModelScenarios.gophasProcesses("").isEmpty, s"left behind: ${SparkModelScenarios.gophasProcesses("")}")
    assert(!model().fit(train, epochs = 1)("loss").head.isNaN, "the next fit")
  }

  test("a truncated or corrupt model.safetensors fails SparkModel.load with the path and the problem") {
    val path = dir.resolve("to-corrupt")
    val m = model()
    m.save(path.toString)
    val weights = path.resolve(GophasNetwork.WeightsFile)
    val crc = path.resolve(s".${GophasNetwork.WeightsFile}.crc")
    val whole = Files.readAllBytes(weights)
    def loadError(bytes: Array[Byte]): String = {
      Files.write(weights, bytes)
      intercept[GophasException](SparkModel.load(path.toString)).getMessage
    }
    // Hadoop's local filesystem keeps a checksum beside each file it writes.
    assert(Files.exists(crc))
    val checked = loadError(java.util.Arrays.copyOf(whole, whole.length / 2))
    assert(checked.contains(s"cannot load the model at $path") && checked.contains("model.safetensors") && checked.contains("Checksum"), checked)
    // Without it (a model from gophas train or Python), the kernel finds the problem.
    Files.delete(crc)
    val truncated = loadError(java.util.Arrays.copyOf(whole, whole.length / 2))
    assert(truncated.contains(s"cannot load the model at $path") && truncated.contains("safetensors") && truncated.contains("want"), truncated)
    val corrupt = whole.clone()
    corrupt(0) = 0xff.toByte // the header length: 8 bytes, little-endian
    corrupt(7) = 0x7f.toByte
    val bad = loadError(corrupt)
    assert(bad.contains(s"cannot load the model at $path") && bad.contains("header length"), bad)
    Files.write(weights, whole)
    assert(SparkModel.load(path.toString).masterNetwork == m.masterNetwork)
  }

  test("save replaces the model's files (and, after a fit, its optimizer states) and nothing else, and leaves no temporary file") {
    val path = dir.resolve("resave")
    Files.createDirectories(path)
    Files.write(path.resolve("notes.txt"), "mine".getBytes(StandardCharsets.UTF_8))
    def names(p: java.nio.file.Path) = Files.list(p).iterator().asScala.map(_.getFileName.toString).filterNot(_.endsWith(".crc")).toSeq.sorted
    val m = model()
    m.save(path.toString)
    assert(names(path) == Seq("model.json", "model.safetensors", "notes.txt"), s"files: ${names(path)}")
    m.fit(train, epochs = 1)
    m.save(path.toString)
    assert(SparkModel.load(path.toString).masterNetwork == m.masterNetwork)
    assert(names(path) == Seq("model.json", "model.safetensors", "notes.txt", "optimizer", "optimizer.safetensors"), s"files: ${names(path)}")
    assert(names(path.resolve("optimizer")) == Seq("partition-0.safetensors", "partition-1.safetensors"),
      s"optimizer states: ${names(path.resolve("optimizer"))}")
  }

  test("a spec without weights gets Keras-style initial weights from the seed, and the same seed gives the same weights") {
    val a = SparkModel.fromSpec(spec, seed = 11L).masterNetwork
    val b = SparkModel.fromSpec(spec, seed = 11L).masterNetwork
    val c = SparkModel.fromSpec(spec, seed = 12L).masterNetwork
    assert(a == b && a != c)
    val bad = intercept[GophasException](SparkModel.fromSpec(spec.replace("\"Dense\"", "\"Conv9D\""), seed = 1L))
    assert(bad.getMessage.contains("Conv9D"), bad.getMessage)
  }

  test("token ids (array<int>, array<long>) feed an Embedding input; ids outside input_dim are named before training") {
    // internal/fixture's TokenSpec: Input((5,), int32) -> Embedding(6, 2) -> GlobalAveragePooling1D -> Dense(1, sigmoid).
    val tokens = new String(Files.readAllBytes(SparkModelScenarios.repoFile("internal/fixture/testdata/tokens.json")), StandardCharsets.UTF_8)
    val s = spark
    import s.implicits._
    val rng = new scala.util.Random(3)
    // The label says whether most ids are below 3: a sum of per-id terms, which the model can learn exactly.
    val rows = Seq.fill(2000)(Seq.fill(5)(rng.nextInt(6))).map(ids => (ids, if (ids.count(_ < 3) > 2) 1.0 else 0.0))
    val ints = rows.toDF("tokens", "label").repartition(2).cache()
    assert(ints.schema("tokens").dataType.simpleString == "array<int>")
    val m = SparkModel.fromSpec(tokens, seed = 5L, batchSize = 32)
    m.fit(ints, epochs = 5, featuresCol = "tokens")
    val longs = ints.select(col("tokens").cast("array<bigint>").as("tokens"), col("label"))
    val acc = m.evaluate(longs, featuresCol = "tokens")("accuracy")
    assert(acc >= 0.9, s"accuracy $acc")
    assert(acc == m.evaluate(ints, featuresCol = "tokens")("accuracy"))

    val bad = rows.zipWithIndex.map { case ((ids, l), i) => (if (i == 11) ids.updated(2, 6) else ids, l) }.toDF("tokens", "label").coalesce(1)
    val e = intercept[GophasException](m.fit(bad, featuresCol = "tokens")).getMessage
    assert(e.contains("features column 'tokens' row 11 position 2: id 6 is outside [0, 6)"), e)
    val negative = intercept[GophasException](m.fit(bad.select(transform(col("tokens"), x => x - 1).as("tokens"), col("label")),
      featuresCol = "tokens")).getMessage
    assert(negative.contains("features column 'tokens' row 0 position ") && negative.contains(": id -1 is outside [0, 6)"), negative)
  }
}

/** Shared by SparkModelSuite and the spark-submit scenarios. */
object SparkModelScenarios {
  val TrainRows = 6000
  val TestRows = 2000
  val Epochs = 3
  /** Measured 0.8585 to 0.8935 over the six mode × frequency pairs (3 epochs, 6000 rows, 2 workers); the bar leaves room for push-order noise. */
  val SubsetAccuracy = 0.83

  /** The MNIST MLP spec of examples/mnist_mlp/model.json. */
  def mlpSpec(): String = {
    val p = Seq(Paths.get("examples/mnist_mlp/model.json"), Paths.get(sys.env.getOrElse("GOPHAS_REPO", "."), "examples/mnist_mlp/model.json"))
      .find(Files.isRegularFile(_)).getOrElse(throw new IllegalStateException("examples/mnist_mlp/model.json not found: run from the repository"))
    new String(Files.readAllBytes(p), StandardCharsets.UTF_8)
  }

  /** A file of the repository (the tests run from its root, or GOPHAS_REPO). */
  def repoFile(rel: String): Path =
    Seq(Paths.get(rel), Paths.get(sys.env.getOrElse("GOPHAS_REPO", "."), rel)).find(Files.isRegularFile(_))
      .getOrElse(throw new IllegalStateException(s"$rel not found: run from the repository"))

  /** This JVM's descendant processes running `gophas <role>` (any role when empty). */
  def gophasProcesses(role: String): Seq[ProcessHandle] =
    ProcessHandle.current().descendants().iterator().asScala.filter { p =>
      val info = p.info()
      p.isAlive && info.command().orElse("").endsWith("gophas") &&
        (role.isEmpty || info.arguments().orElse(Array.empty[String]).headOption.contains(role))
    }.toSeq
}

/** Reads the F32 tensors of a safetensors file (Go's gokernel.WriteSafetensors) by name. */
object SafetensorsFile {
  def read(bytes: Array[Byte]): Map[String, Array[Float]] = {
    val buf = java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN)
    val n = buf.getLong(0).toInt
    val header = new com.fasterxml.jackson.databind.ObjectMapper().readTree(new String(bytes, 8, n, StandardCharsets.UTF_8))
    header.properties().asScala.filter(_.getKey != "__metadata__").map { e =>
      val offsets = e.getValue.path("data_offsets")
      val (from, to) = (8 + n + offsets.get(0).asInt(), 8 + n + offsets.get(1).asInt())
      e.getKey -> Array.tabulate((to - from) / 4)(i => buf.getFloat(from + 4 * i))
    }.toMap
  }
}
