package io.gophas.spark

import java.nio.file.{Files, Path}
import java.util.concurrent.{ExecutionException, FutureTask}

import scala.collection.immutable.ListMap
import scala.collection.mutable
import scala.collection.mutable.ArrayBuffer
import scala.util.control.NonFatal

import org.apache.spark.broadcast.Broadcast
import org.apache.spark.internal.Logging
import org.apache.spark.sql.DataFrame
import org.apache.spark.sql.functions.{col, rand}
import org.apache.spark.storage.StorageLevel

import io.gophas.spark.callbacks.{BackupAndRestore, CSVLogger}

/**
 * What `SparkModel.fit` takes beside the data, named as Keras' fit names it.
 *
 * @param validationSplit fraction of rows (chosen at random with seed) held out and evaluated as `val_` keys
 * @param validationData  a second DataFrame (features, label and, if given, sample weight columns) evaluated
 *                        instead, exactly and distributed, after the epochs validationFreq picks
 * @param validationFreq  validate every this many epochs (Keras' integer validation_freq); validationEpochs, when
 *                        not empty, lists the epochs (from 1) to validate instead (Keras' list)
 * @param classWeight     class index to weight: each training row's loss counts its class's weight (Keras' class_weight)
 * @param sampleWeightCol a numeric column of per-row sample weights (Keras' sample_weight), for training and, when
 *                        the validation data has it, validation; not with classWeight
 * @param callbacks       run on the driver at the epoch boundaries with the merged logs (see [[Callback]])
 * @param validationWeightCol the sample weight column of validationData, when it is not sampleWeightCol
 */
final case class FitOptions(
    epochs: Int = 1,
    batchSize: Int = 32,
    validationSplit: Double = 0.0,
    verbose: Int = 0,
    featuresCol: String = Protocol.DefaultFeaturesCol,
    labelCol: String = Protocol.DefaultLabelCol,
    seed: Long = 0L,
    callbacks: Seq[Callback] = Nil,
    validationData: Option[DataFrame] = None,
    validationFreq: Int = 1,
    validationEpochs: Seq[Int] = Nil,
    classWeight: Map[Int, Double] = Map.empty,
    sampleWeightCol: String = "",
    validationWeightCol: String = "") {

  private[spark] def check(): Unit = {
    if (epochs < 1) throw new GophasException(s"epochs must be at least 1, got $epochs")
    if (batchSize < 1) throw new GophasException(s"batchSize must be at least 1, got $batchSize")
    if (!(validationSplit >= 0 && validationSplit < 1)) throw new GophasException(s"validationSplit must be in [0, 1), got $validationSplit")
    if (verbose < 0) throw new GophasException(s"verbose must be 0, 1 or 2, got $verbose")
    if (validationFreq < 1) throw new GophasException(s"validationFreq must be at least 1, got $validationFreq")
    if (validationData.isDefined && validationSplit > 0)
      throw new GophasException("give validationData or validationSplit, not both (Keras uses validationData and ignores the split)")
    if (classWeight.nonEmpty && sampleWeightCol.nonEmpty)
      throw new GophasException("classWeight and sampleWeightCol cannot be used together (Keras refuses class_weight with sample_weight): give one")
    classWeight.foreach { case (c, w) =>
      if (c < 0) throw new GophasException(s"classWeight: class $c is not a class index")
      if (!(w >= 0) || w.isInfinite) throw new GophasException(s"classWeight: the weight $w of class $c is not a finite number >= 0")
    }
    if (callbacks.count(_.isInstanceOf[BackupAndRestore]) > 1) throw new GophasException("more than one BackupAndRestore callback")
  }

  /** Whether epoch (from 0) is validated. */
  private[spark] def validates(epoch: Int): Boolean =
    if (validationEpochs.nonEmpty) validationEpochs.contains(epoch + 1) else (epoch + 1) % validationFreq == 0
}

/**
 * One fit, from checking the data to stopping the parameter server, in
 * steps the Python package can interleave with its own callbacks: begin,
 * then per epoch epochBegin, runEpoch, epochEnd, then end; close always.
 * The session is the callbacks' [[FitContext]].
 */
private[spark] final class FitSession(
    df: DataFrame,
    initial: GophasNetwork,
    mode: String,
    frequency: String,
    numWorkers: Int,
    val options: FitOptions) extends FitContext with Logging {

  import SparkModel._

  options.check()

  private val o = options
  private val spark = df.sparkSession
  private val sc = spark.sparkContext
  private val settings = GophasConf.settings(spark)
  private val fitSettings = GophasConf.fitSettings(spark)
  private val hadoopConf = sc.hadoopConfiguration

  private var info: ModelInfo = _
  private var all: DataFrame = _
  private var cached: DataFrame = _
  private var validation: Option[DataFrame] = None
  private var validationWeights = ""
  @volatile private var ps: ParameterServer = _
  // The parameter server starting while the data is checked (begin).
  @volatile private var starting: FutureTask[ParameterServer] = _
  private var bc: Broadcast[GophasNetwork] = _
  private var tmp: Path = _
  private var workers = 0
  private var rows = 0L
  private var states: Array[String] = Array.empty
  private var driverRef: Protocol.DriverRef = _
  private var checkpoint: Option[Checkpoint] = None

  private val merged = ArrayBuffer.empty[ListMap[String, Double]]
  private val epochsRun = ArrayBuffer.empty[Int]
  private var perWorker: Array[ArrayBuffer[ListMap[String, Double]]] = Array.empty
  private val seconds = ArrayBuffer.empty[Double]
  private var lrOverride: Option[Double] = None
  private var stop = false
  private var epochStart = 0L
  private val warned = mutable.LinkedHashSet.empty[String]
  private val pendingWarnings = ArrayBuffer.empty[String]

  /** The epoch (from 0) the fit starts at: 0, or after a resumed checkpoint's epochs. */
  var initialEpoch = 0

  /** State checkpointed beside the callbacks' (the Python package's callbacks), and the one a resumed fit found. */
  var extraState: Option[CallbackState] = None
  var resumedExtraState: Option[CallbackState] = None

  // ---- FitContext -----------------------------------------------------------

  def stopTraining: Boolean = stop
  def stopTraining_=(s: Boolean): Unit = stop = s

  def learningRate: Double = lrOverride.getOrElse {
    if (info.schedule.isEmpty) info.learningRate
    else {
      val dir = tmp.resolve("lr-spec")
      Files.createDirectories(dir)
      Files.write(dir.resolve(GophasNetwork.SpecFile), initial.spec.getBytes(java.nio.charset.StandardCharsets.UTF_8))
      ModelInfo.inspect(GophasBinary.get(settings.binary, settings.unpackDir), dir, 0L, None, settings.ioTimeoutMs, step = ps.stats().steps).learningRate
    }
  }

  def learningRate_=(rate: Double): Unit = {
    if (info.schedule.nonEmpty)
      throw new GophasException(s"the optimizer's learning rate is a ${info.schedule} schedule, so it cannot be set " +
        "(as Keras refuses it): use a constant learning rate with this callback")
    if (!(rate >= 0) || rate.isInfinite) throw new GophasException(s"learning rate $rate must be a finite number >= 0")
    lrOverride = Some(rate.toFloat.toDouble) // the optimizer keeps it as a float32, as Keras' variable does
  }

  def network: GophasNetwork = {
    val dir = Files.createTempDirectory(tmp, "net")
    ps.save(dir)
    try GophasNetwork.readLocal(dir) finally GophasNetwork.deleteRecursively(dir)
  }

  def network_=(net: GophasNetwork): Unit = {
    val dir = Files.createTempDirectory(tmp, "set")
    try ps.load(net.writeTo(dir)) finally GophasNetwork.deleteRecursively(dir)
  }

  def save(path: String, weightsOnly: Boolean): Unit = {
    val net = withLearningRate(network)
    if (!weightsOnly) net.save(path, hadoopConf)
    else {
      val p = new org.apache.hadoop.fs.Path(path)
      val out = p.getFileSystem(hadoopConf).create(p, true)
      try out.write(net.weights) finally out.close()
    }
  }

  def higherIsBetter(metric: String): Option[Boolean] =
    if (info.higherIsBetter.contains(metric)) Some(true)
    else if (info.evaluateKeys.contains(metric) || info.weightedKeys.contains(metric)) Some(false)
    else None

  def warn(message: String): Unit = if (warned.add(message)) {
    logWarning(message)
    pendingWarnings += message
  }

  def say(line: String): Unit = { logInfo(line); Console.out.println(line) }

  def params: Map[String, Any] = Map("epochs" -> o.epochs, "steps" -> stepsPerEpoch, "verbose" -> o.verbose)

  /** Batches per epoch over all workers (their partitions' rows over the batch size, rounded up per worker). */
  private var stepsPerEpoch = 0L

  /** Every warning issued, each once. */
  def allWarnings: Seq[String] = warned.toSeq

  /** The warnings issued since the last call (the Python package re-issues them as Python warnings). */
  def drainWarnings(): Seq[String] = { val w = pendingWarnings.toSeq; pendingWarnings.clear(); w }

  /**
   * Runs a step of the fit under the guard (FitGuard): a failure around it
   * (a dead parameter server, lost scheduler threads, tasks that cannot be
   * launched) ends it with an error instead of a hang.
   */
  private val guard = new FitGuard(sc, settings.ioTimeoutMs, () => Option(ps))
  private def guarded[T](what: String)(body: => T): T = guard.run { guard.step(what); body }

  // Seconds in each phase of the fit, in the order first seen.
  private val phases = mutable.LinkedHashMap.empty[String, Double]
  private var fitStart = 0L
  private var fitSeconds = 0.0

  private def timed[T](phase: String)(body: => T): T = {
    val t = System.nanoTime()
    try body finally phases.synchronized { phases(phase) = phases.getOrElse(phase, 0.0) + (System.nanoTime() - t) / 1e9 }
  }

  /**
   * Where the fit's time went, in seconds: each phase (checking and caching
   * the data, waiting for the parameter server, loading the model, the
   * epochs' Spark jobs, validation, merging the metrics, checkpoints,
   * saving the trained model), and `total` from begin to end. Everything
   * but `epoch jobs` is time the workers did not train.
   */
  def phaseSeconds: ListMap[String, Double] = phases.synchronized {
    ListMap(phases.toSeq: _*) ++ (if (fitSeconds > 0) Seq("total" -> fitSeconds) else Nil)
  }

  private def line(s: => String, level: Int = 1): Unit =
    if (o.verbose >= level) say(s) else logDebug(s)

  // ---- the fit --------------------------------------------------------------

  /**
   * Checks the data, starts the parameter server with the network (its
   * workers' optimizer states, or a checkpoint's), checks the checkpoint
   * directory, and runs the callbacks' onTrainBegin.
   */
  def begin(): Unit = guarded("checking the data") {
    fitStart = System.nanoTime()
    tmp = Files.createTempDirectory("gophas-fit")
    info = timed("inspect the model") { SparkModel.info(initial, settings) }
    if (info.evaluateKeys.isEmpty) throw new GophasException(s"the network '${info.name}' has no loss: compile it with a loss to fit it")
    if (o.classWeight.nonEmpty) {
      if (info.outputShape.length > 1)
        throw new GophasException(s"classWeight needs an output with one target row per sample; the network's output has shape ${info.outputShape.mkString("(", ", ", ")")}")
      o.classWeight.keys.find(_ >= math.max(info.outputDim, 2)).foreach(c =>
        throw new GophasException(s"classWeight: class $c is not a class of the network's ${math.max(info.outputDim, 2)} classes"))
    }
    checkpoint = o.callbacks.collectFirst { case b: BackupAndRestore => new Checkpoint(b.backupDir, hadoopConf, b.deleteCheckpoint) }
      .orElse(fitSettings.checkpointDir.map(d => new Checkpoint(d, hadoopConf, deleteOnSuccess = true)))
    checkpoint.foreach(_.checkWritable()) // before any training
    val weightCol = o.sampleWeightCol
    val prepared0 = prepare(df, o.featuresCol, o.labelCol, weightCol)
    val prepared = if (numWorkers > 0) prepared0.repartition(numWorkers) else prepared0
    // One cached copy of the data, filled by the check: the source (perhaps
    // a parallelized collection, whose rows every task reading it ships from
    // the driver) is read once. The validation split is a column of that
    // copy, so training and validation rows are both filters of it.
    all = (if (o.validationSplit > 0) prepared.withColumn(SplitCol, rand(o.seed)) else prepared).persist(StorageLevel.MEMORY_AND_DISK)
    val (train, heldOut) =
      if (o.validationSplit > 0)
        (all.where(col(SplitCol) >= o.validationSplit).drop(SplitCol), Some(all.where(col(SplitCol) < o.validationSplit).drop(SplitCol)))
      else (all, None)
    validation = heldOut.orElse(o.validationData.map { v =>
      validationWeights =
        if (o.validationWeightCol.nonEmpty) o.validationWeightCol
        else if (weightCol.nonEmpty && v.columns.contains(weightCol)) weightCol
        else ""
      prepare(v, o.featuresCol, o.labelCol, validationWeights)
    })
    if (heldOut.isDefined) validationWeights = weightCol
    cached = train
    if (heldOut.isEmpty) validation.foreach(_.persist(StorageLevel.MEMORY_AND_DISK))
    workers = SparkLine.get.internalRows(cached).getNumPartitions
    if (mode == Synchronous) {
      val slots = SparkLine.get.taskSlots(sc)
      if (workers > slots)
        throw new GophasException(s"synchronous mode runs all $workers workers at once, but the cluster has $slots task slots " +
          s"now: set numWorkers to at most $slots, add executors or cores, or use mode asynchronous")
    }
    // The parameter server starts (a process, its ready line) while Spark
    // checks and caches the data: neither waits for the other.
    val scale = mode != Synchronous && fitSettings.scaleDeltas.getOrElse(frequency == Epoch)
    starting = new FutureTask[ParameterServer](() => {
      val binary = GophasBinary.get(settings.binary, settings.unpackDir)
      ParameterServer.start(binary, fitSettings.driverHost, mode, frequency, workers, scale, fitSettings.tls,
        fitSettings.roundTimeoutMs, math.min(settings.ioTimeoutMs, 120000L))
    })
    val starter = new Thread(starting, "gophas fit: starting the parameter server")
    starter.setDaemon(true)
    starter.start()
    val (n, perPartition) = timed("check and cache the data") {
      withDescription(spark, "gophas fit: check the data") {
        check(cached, info, o.featuresCol, o.labelCol, weightCol, partitionRows = true, source = Some(prepared0))
      }
    }
    rows = n
    if (rows == 0) throw new GophasException("the DataFrame has no rows to train on" +
      (if (o.validationSplit > 0) s" (after holding out validationSplit ${o.validationSplit})" else ""))
    stepsPerEpoch = perPartition.map(r => (r + o.batchSize - 1) / o.batchSize).sum
    validation.filter(_ => o.validationData.isDefined).foreach { v =>
      timed("check the validation data") {
        withDescription(spark, "gophas fit: check the validation data") { check(v, info, o.featuresCol, o.labelCol, validationWeights) }
      }
    }
    guard.step("starting the parameter server")
    ps = timed("wait for the parameter server") {
      try starting.get() catch { case e: ExecutionException => throw e.getCause }
    }
    val loadStart = System.nanoTime()
    bc = sc.broadcast(initial)
    driverRef = Protocol.DriverRef(ps.address, ps.token, Option(ps.tlsFingerprint).getOrElse(""))
    states = Array.fill(workers)("")
    perWorker = Array.fill(workers)(ArrayBuffer.empty[ListMap[String, Double]])
    val resumed = checkpoint.flatMap(_.latest())
    val start = resumed.map(_.network).getOrElse(initial)
    ps.load(start.writeTo(tmp.resolve("initial")))
    installWorkerStates(start)
    phases.synchronized { phases("load the model") = (System.nanoTime() - loadStart) / 1e9 }
    o.callbacks.foreach { cb =>
      cb.context = this
      cb match {
        case c: CSVLogger => c.hadoopConf = hadoopConf
        case _ =>
      }
    }
    o.callbacks.foreach(_.onTrainBegin(mutable.LinkedHashMap.empty))
    resumed.foreach(restore)
    line(s"gophas fit: $rows rows, $workers workers, $mode, push every $frequency, batch size ${o.batchSize}, ${o.epochs} epochs, " +
      s"parameter server at ${ps.address}" + resumed.map(r => s"; resumed from ${checkpoint.get.dir} after epoch ${r.epochsDone}").getOrElse(""))
  }

  /** Puts the network's workers' optimizer states (or its one state) into the store, one per worker. */
  private def installWorkerStates(net: GophasNetwork): Unit = {
    val wanted = (0 until workers).flatMap(p => net.optimizerStateFor(s"partition-$p").map(p -> _))
    if (wanted.isEmpty) return
    val dir = Files.createTempDirectory(tmp, "states")
    val files = wanted.map { case (p, bytes) => Files.write(dir.resolve(s"partition-$p"), bytes) }
    ps.importFiles(files).zip(wanted).foreach { case (hash, (p, _)) => states(p) = hash }
    GophasNetwork.deleteRecursively(dir)
  }

  private def restore(c: CheckpointData): Unit = {
    initialEpoch = c.epochsDone
    ps.setSteps(c.steps)
    lrOverride = c.learningRate
    stop = c.stopped
    merged.clear()
    merged ++= c.logs
    epochsRun.clear()
    epochsRun ++= c.epochs
    seconds.clear()
    seconds ++= c.seconds
    for (p <- 0 until workers) {
      perWorker(p).clear()
      perWorker(p) ++= c.workerLogs.lift(p).getOrElse(c.epochs.map(_ => ListMap.empty[String, Double]))
    }
    // A callback gets its state back when the fit has one of the same class at the same place.
    c.callbacks.foreach { case (i, (cls, s)) => o.callbacks.lift(i).filter(_.getClass.getName == cls).foreach(_.restoreState(s)) }
    resumedExtraState = c.callbacks.get(-1).map(_._2)
  }

  /** Whether the fit should run epoch (from 0). */
  def shouldRun(epoch: Int): Boolean = !stop && epoch < o.epochs

  /** Runs the callbacks' onEpochBegin; returns the logs they saw. */
  def epochBegin(epoch: Int): mutable.LinkedHashMap[String, Double] = {
    epochStart = System.nanoTime()
    val logs = mutable.LinkedHashMap.empty[String, Double]
    o.callbacks.foreach(_.onEpochBegin(epoch, logs))
    logs
  }

  /** Trains epoch (from 0) on every worker and validates it when due; returns its merged logs. */
  def runEpoch(epoch: Int): mutable.LinkedHashMap[String, Double] = guarded(s"training epoch ${epoch + 1}/${o.epochs}") {
    val e = epoch + 1
    if (epochStart == 0L) epochStart = System.nanoTime()
    val round = ps.openEpoch(e)
    val header = Protocol.TrainHeader(Gophas.common(settings), o.featuresCol, o.labelCol, model = "", driverRef, worker = "",
      e, o.epochs, o.batchSize, round, o.seed, fitSettings.shuffleBufferBytes, sampleWeightCol = o.sampleWeightCol,
      classWeight = o.classWeight, learningRate = lrOverride)
    val task = trainTask(settings, cached.schema, header, states.clone(), bc)
    val input = SparkLine.get.internalRows(cached)
    val out = if (mode == Synchronous) input.barrier().mapPartitionsWithIndex(task) else input.mapPartitionsWithIndex(task)
    val got = timed("epoch jobs") { withDescription(spark, s"gophas fit epoch $e/${o.epochs}") { out.collect() } }
    val metrics = got.filter(_.key != OptimizerStateKey).toSeq
    val valRows = validation.filter(_ => o.validates(epoch)).map { v =>
      guard.step(s"validating epoch $e/${o.epochs}")
      timed("validation") {
        withDescription(spark, s"gophas fit epoch $e/${o.epochs}: validation") {
          evaluateRows(v, o.featuresCol, o.labelCol, bc, settings, Some(driverRef), validationWeights).toSeq
        }
      }
    }
    // The whole epoch, each worker, and the validation rows: merged in one go.
    val groups = Seq(metrics.map(r => (r.key, r.sum, r.count))) ++
      (0 until workers).map(p => metrics.filter(_.partition == p).map(r => (r.key, r.sum, r.count))) ++ valRows.toSeq
    val results = timed("merge the metrics") { mergeAll(initial, info, settings, groups) }
    val logs = mutable.LinkedHashMap.empty[String, Double]
    logs ++= results.head
    for (p <- 0 until workers) perWorker(p) += results(1 + p)
    val replaced = ArrayBuffer.empty[String]
    got.filter(r => r.key == OptimizerStateKey && r.state.nonEmpty).foreach { r =>
      if (states(r.partition).nonEmpty && states(r.partition) != r.state) replaced += states(r.partition)
      states(r.partition) = r.state
    }
    ps.forget(replaced.toSeq)
    if (valRows.nonEmpty) results.last.foreach { case (k, x) => logs(s"val_$k") = x }
    logs
  }

  /**
   * Runs the callbacks' onEpochEnd on the logs, records the epoch in the
   * history and writes the checkpoint.
   */
  def epochEnd(epoch: Int, logs: mutable.LinkedHashMap[String, Double]): Unit = {
    o.callbacks.foreach(_.onEpochEnd(epoch, logs))
    record(epoch, logs)
  }

  /** Records the epoch's logs (after every callback ran) and writes the checkpoint. */
  def record(epoch: Int, logs: mutable.LinkedHashMap[String, Double]): Unit = {
    val e = epoch + 1
    merged += ListMap(logs.toSeq: _*)
    epochsRun += epoch
    seconds += (System.nanoTime() - epochStart) / 1e9
    epochStart = 0L
    line(f"gophas fit epoch $e/${o.epochs}: ${logs.map { case (k, x) => f"$k $x%.4f" }.mkString(", ")} (${seconds.last}%.1f s)")
    for (p <- 0 until workers)
      line(s"  partition-$p: ${perWorker(p).last.map { case (k, x) => f"$k $x%.4f" }.mkString(", ")}", 2)
    checkpoint.foreach(c => timed("checkpoints") { c.save(CheckpointData(epoch + 1, withWorkerStates(network), ps.stats().steps, lrOverride,
      epochsRun.toSeq, merged.toSeq, perWorker.toSeq.map(_.toSeq), seconds.toSeq, stop,
      o.callbacks.zipWithIndex.flatMap { case (cb, i) => cb.state.map(s => i -> (cb.getClass.getName -> s)) }.toMap ++
        extraState.map(s => -1 -> ("python" -> s)))) })
  }

  /** The history so far. */
  def history: History = {
    def columns(eps: Seq[ListMap[String, Double]], fill: Boolean): ListMap[String, IndexedSeq[Double]] = {
      val keys = eps.flatMap(_.keys).distinct
      ListMap(keys.map(k => k -> (if (fill) eps.map(_.getOrElse(k, Double.NaN)) else eps.flatMap(_.get(k))).toIndexedSeq): _*)
    }
    new History(columns(merged.toSeq, fill = false),
      ListMap((0 until workers).map(p => s"partition-$p" -> columns(perWorker(p).toSeq, fill = true)): _*),
      seconds.toIndexedSeq, Some(epochsRun.toIndexedSeq),
      ListMap("epochs" -> o.epochs.toLong, "steps" -> stepsPerEpoch, "verbose" -> o.verbose.toLong))
  }

  /** The network with every worker's current optimizer state. */
  private def withWorkerStates(net: GophasNetwork): GophasNetwork = {
    val have = states.zipWithIndex.filter(_._1.nonEmpty)
    if (have.isEmpty) return net
    val dir = Files.createTempDirectory(tmp, "export")
    try {
      ps.exportBlobs(have.map(_._1).distinct.toSeq, dir)
      net.withOptimizerStates(have.map { case (h, p) => s"partition-$p" -> Files.readAllBytes(dir.resolve(h)) }.toMap)
    } finally GophasNetwork.deleteRecursively(dir)
  }

  /** The network with the learning rate the callbacks set in its compile config. */
  private def withLearningRate(net: GophasNetwork): GophasNetwork = lrOverride match {
    case None => net
    case Some(lr) =>
      val states = net.optimizerStates
      SparkModel.network(net.spec, Some(net.weights), 0L, ModelInfo.Compile(learningRate = lr)).withOptimizerStates(states)
  }

  /** Runs the callbacks' onTrainEnd, and returns the history, the final network (with optimizer states) and the stats. */
  def end(): (History, GophasNetwork, ServerStats) = {
    o.callbacks.foreach(_.onTrainEnd(mutable.LinkedHashMap.empty))
    val (net, st) = guarded("saving the trained model") {
      timed("save the trained model") { (withLearningRate(withWorkerStates(network)), ps.stats()) }
    }
    checkpoint.filter(_.deleteOnSuccess).foreach(_.delete())
    fitSeconds = (System.nanoTime() - fitStart) / 1e9
    val p = phaseSeconds
    val jobs = p.getOrElse("epoch jobs", 0.0)
    line(f"gophas fit: $fitSeconds%.2f s, $jobs%.2f s in the epochs' Spark jobs, ${fitSeconds - jobs}%.2f s outside them: " +
      (p - "total" - "epoch jobs").map { case (k, v) => f"$k $v%.2f s" }.mkString(", "), 2)
    (history, net, st)
  }

  /** Stops the parameter server and drops what the fit cached; safe to call twice. */
  def close(): Unit = {
    // Not under the guard: when it gave up on a step, that step may be stuck
    // where it cannot clean up. A cleanup that fails (Spark stopped under the
    // fit) is logged: it must not hide why the fit failed.
    def cleanly(what: String)(f: => Unit): Unit =
      try f catch { case NonFatal(e) => logWarning(s"gophas fit: $what failed: $e") }
    cleanly("stopping the parameter server") {
      // A server still starting when the fit failed is waited for (its own
      // start has a deadline) and stopped: no process is left behind.
      if (ps == null && starting != null)
        try ps = starting.get() catch { case _: ExecutionException => }
      if (ps != null) ps.stop()
    }
    cleanly("destroying the broadcast") { if (bc != null) bc.destroy() }
    cleanly("unpersisting the fit's data") {
      if (all != null) all.unpersist()
      if (o.validationData.isDefined) validation.foreach(_.unpersist())
    }
    if (tmp != null) GophasNetwork.deleteRecursively(tmp)
    ps = null
    starting = null
    bc = null
    all = null
    cached = null
  }

  /** The whole fit, Scala callbacks only. */
  def run(): (History, GophasNetwork, ServerStats) =
    try {
      begin()
      var epoch = initialEpoch
      while (shouldRun(epoch)) {
        epochBegin(epoch)
        val logs = runEpoch(epoch)
        epochEnd(epoch, logs)
        epoch += 1
      }
      end()
    } finally close()
}
