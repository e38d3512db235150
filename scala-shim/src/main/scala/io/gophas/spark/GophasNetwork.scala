package io.gophas.spark

import java.io.{ByteArrayOutputStream, FileNotFoundException, InputStream}
import java.nio.charset.StandardCharsets
import java.nio.file.{AtomicMoveNotSupportedException, FileAlreadyExistsException, Files, Path, Paths, StandardCopyOption}
import java.security.MessageDigest
import java.util.Comparator
import java.util.concurrent.ConcurrentHashMap

import scala.util.control.NonFatal

import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.fs.{Path => HPath}

/**
 * A Gophas network: the model spec (the JSON Keras' `model.to_json()` writes,
 * with its compile config) and its weights (safetensors, in Keras'
 * `get_weights()` order). It is what `SparkModel.masterNetwork` returns and
 * what a saved model directory holds: `model.json` and `model.safetensors`,
 * the layout `gophas train --out` and the Go kernel read and write.
 *
 * Immutable and serializable: it travels to the executors in a broadcast.
 *
 * On the driver it may also carry optimizer states (safetensors, as the Go
 * kernel writes them), so that a second fit, or a fit of the saved and
 * loaded network, continues Adam's moments as Keras does: by worker
 * (`partition-<index>`, each Spark worker's own optimizer) and as the
 * model's one state ([[GophasNetwork.ModelOptimizer]], `optimizer.safetensors`,
 * what `gophas train` and Keras keep). They do not travel to the executors
 * and are not part of the hash or of equality.
 */
final class GophasNetwork(val spec: String, weightBytes: Array[Byte], optimizers: Map[String, Array[Byte]] = Map.empty)
    extends Serializable {
  require(spec != null && spec.nonEmpty, "a network needs a spec")
  require(weightBytes != null, "a network needs weights")

  private val weightsCopy = weightBytes.clone()
  @transient private val optimizerCopy: Map[String, Array[Byte]] = optimizers.map { case (k, v) => k -> v.clone() }

  /** The optimizer states by name (worker names, and ModelOptimizer); empty on an executor. */
  def optimizerStates: Map[String, Array[Byte]] = Option(optimizerCopy).getOrElse(Map.empty).map { case (k, v) => k -> v.clone() }

  /** This network with the given optimizer states instead of its own. */
  def withOptimizerStates(states: Map[String, Array[Byte]]): GophasNetwork = new GophasNetwork(spec, weightsCopy, states)

  /** The state a worker starts from: its own, else the model's one state. */
  private[spark] def optimizerStateFor(worker: String): Option[Array[Byte]] = {
    val s = optimizerStates
    s.get(worker).orElse(s.get(GophasNetwork.ModelOptimizer))
  }

  /** The weights file (safetensors); a copy. */
  def weights: Array[Byte] = weightsCopy.clone()

  /** Hex SHA-256 of the spec and the weights: equal hashes, equal networks. */
  lazy val hash: String = {
    val md = MessageDigest.getInstance("SHA-256")
    val s = spec.getBytes(StandardCharsets.UTF_8)
    md.update(java.nio.ByteBuffer.allocate(8).putLong(s.length.toLong).array())
    md.update(s)
    md.update(weightsCopy)
    md.digest().map(b => f"$b%02x").mkString
  }

  /**
   * Saves the network as a model directory (`model.json`, `model.safetensors`)
   * at path, through Hadoop's FileSystem API: a local path or any Hadoop URI.
   * Existing files of those names are replaced, other files are left.
   * Optimizer states go along: the model's one as `optimizer.safetensors`
   * (the first worker's when the network has only workers'), each worker's
   * as `optimizer/<worker>.safetensors`. Every file is written under a
   * temporary name first and renamed into place only when all are
   * complete, so a save that fails (a full disk, a lost connection) leaves
   * the previous files as they were.
   */
  def save(path: String): Unit = save(path, new Configuration())

  def save(path: String, hadoopConf: Configuration): Unit = {
    val dir = new HPath(path)
    val fs = dir.getFileSystem(hadoopConf)
    val suffix = s".tmp-${java.util.UUID.randomUUID()}"
    val states = optimizerStates
    val workers = states - GophasNetwork.ModelOptimizer
    val modelState = states.get(GophasNetwork.ModelOptimizer).orElse(workers.toSeq.sortBy(_._1).headOption.map(_._2))
    val files = Seq(GophasNetwork.WeightsFile -> weightsCopy, GophasNetwork.SpecFile -> spec.getBytes(StandardCharsets.UTF_8)) ++
      modelState.map(GophasNetwork.OptimizerFile -> _)
    val temps = files.map { case (name, _) => new HPath(dir, s".$name$suffix") }
    // The workers' states go to a temporary directory that replaces optimizer/ as a whole.
    val optDir = new HPath(dir, GophasNetwork.OptimizerDir)
    val optTemp = new HPath(dir, s".${GophasNetwork.OptimizerDir}$suffix")
    def write(p: HPath, bytes: Array[Byte]): Unit = {
      val out = fs.create(p, true)
      try out.write(bytes) finally out.close()
    }
    try {
      fs.mkdirs(dir)
      files.zip(temps).foreach { case ((_, bytes), tmp) => write(tmp, bytes) }
      workers.foreach { case (w, b) => write(new HPath(optTemp, s"$w.safetensors"), b) }
      files.zip(temps).foreach { case ((name, _), tmp) =>
        val dst = new HPath(dir, name)
        if (fs.exists(dst)) fs.delete(dst, false)
        if (!fs.rename(tmp, dst)) throw new java.io.IOException(s"cannot rename $tmp to $dst")
      }
      if (modelState.isEmpty) {
        val stale = new HPath(dir, GophasNetwork.OptimizerFile)
        if (fs.exists(stale)) fs.delete(stale, false)
      }
      if (fs.exists(optDir)) fs.delete(optDir, true)
      if (workers.nonEmpty && !fs.rename(optTemp, optDir)) throw new java.io.IOException(s"cannot rename $optTemp to $optDir")
    } catch {
      case NonFatal(e) =>
        (temps :+ optTemp).foreach(t => try fs.delete(t, true) catch { case NonFatal(_) => })
        throw new GophasException(s"saving the model to $path failed: $e; the files that were there are unchanged", e)
    }
  }

  /** Writes the model directory to a local path (created, replaced files). */
  private[spark] def writeTo(dir: Path): Path = {
    Files.createDirectories(dir)
    Files.write(dir.resolve(GophasNetwork.SpecFile), spec.getBytes(StandardCharsets.UTF_8))
    Files.write(dir.resolve(GophasNetwork.WeightsFile), weightsCopy)
    dir
  }

  override def equals(o: Any): Boolean = o match {
    case n: GophasNetwork => n.hash == hash
    case _ => false
  }
  override def hashCode(): Int = hash.hashCode
  override def toString: String = s"GophasNetwork(${hash.take(12)}, ${weightsCopy.length} weight bytes)"
}

object GophasNetwork {
  val SpecFile = "model.json"
  val WeightsFile = "model.safetensors"
  /** The model's one optimizer state, as the Go kernel saves it (gokernel.OptimizerFile). */
  val OptimizerFile = "optimizer.safetensors"
  /** The workers' optimizer states, one file per worker name. */
  val OptimizerDir = "optimizer"
  /** The name of the model's one optimizer state among optimizerStates. */
  val ModelOptimizer = "model"

  /**
   * Loads a model directory saved by [[GophasNetwork.save]], `gophas train
   * --out` or the Python package, through Hadoop's FileSystem API.
   */
  def load(path: String): GophasNetwork = load(path, new Configuration())

  def load(path: String, hadoopConf: Configuration): GophasNetwork = {
    val dir = new HPath(path)
    val fs = dir.getFileSystem(hadoopConf)
    def get(name: String): Array[Byte] = {
      val p = new HPath(dir, name)
      try {
        val in = fs.open(p)
        try readAll(in) finally in.close()
      } catch {
        case e: FileNotFoundException =>
          throw new GophasException(s"$path is not a Gophas model directory: $name is missing (want ${SpecFile} and ${WeightsFile})", e)
        case e: java.io.IOException =>
          throw new GophasException(s"cannot load the model at $path: reading $name: ${e.getMessage}", e)
      }
    }
    val states = scala.collection.mutable.Map.empty[String, Array[Byte]]
    val optDir = new HPath(dir, OptimizerDir)
    if (fs.exists(optDir))
      fs.listStatus(optDir).map(_.getPath.getName).filter(_.endsWith(".safetensors")).foreach { f =>
        states(f.stripSuffix(".safetensors")) = get(s"$OptimizerDir/$f")
      }
    // With workers' states, optimizer.safetensors is the copy save made of one of them (for gophas train and Keras).
    if (states.isEmpty && fs.exists(new HPath(dir, OptimizerFile))) states(ModelOptimizer) = get(OptimizerFile)
    new GophasNetwork(new String(get(SpecFile), StandardCharsets.UTF_8), get(WeightsFile), states.toMap)
  }

  /** Reads a local model directory. */
  private[spark] def readLocal(dir: Path): GophasNetwork =
    new GophasNetwork(new String(Files.readAllBytes(dir.resolve(SpecFile)), StandardCharsets.UTF_8),
      Files.readAllBytes(dir.resolve(WeightsFile)))

  private def readAll(in: InputStream): Array[Byte] = {
    val out = new ByteArrayOutputStream()
    in.transferTo(out)
    out.toByteArray
  }

  private val local = new ConcurrentHashMap[String, Path]()

  /**
   * The network as a local model directory on this JVM's machine, written
   * once per JVM under `<base>/gophas-models/<hash>` (atomically: a reader
   * never sees a half-written directory), so every task of an executor
   * shares one copy.
   */
  private[spark] def localDir(net: GophasNetwork, base: Option[String]): Path =
    local.computeIfAbsent(net.hash + "|" + base.getOrElse(""), _ => {
      val root = Paths.get(base.getOrElse(System.getProperty("java.io.tmpdir")), "gophas-models")
      Files.createDirectories(root)
      val dir = root.resolve(net.hash)
      if (Files.isRegularFile(dir.resolve(WeightsFile)) && sameBytes(dir, net)) dir
      else {
        val tmp = Files.createTempDirectory(root, net.hash.take(12) + ".tmp")
        try {
          net.writeTo(tmp)
          try Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE)
          catch {
            case _: FileAlreadyExistsException | _: java.nio.file.DirectoryNotEmptyException | _: AtomicMoveNotSupportedException
                if sameBytes(dir, net) => // another JVM on this machine won the race
          }
        } finally deleteRecursively(tmp)
        if (!sameBytes(dir, net)) throw new GophasException(s"cannot write the model to $dir: its files differ from the model's")
        dir
      }
    })

  private def sameBytes(dir: Path, net: GophasNetwork): Boolean =
    try {
      java.util.Arrays.equals(Files.readAllBytes(dir.resolve(WeightsFile)), net.weightsCopy) &&
        new String(Files.readAllBytes(dir.resolve(SpecFile)), StandardCharsets.UTF_8) == net.spec
    } catch { case NonFatal(_) => false }

  private[spark] def deleteRecursively(p: Path): Unit =
    if (p != null && Files.exists(p)) {
      val s = Files.walk(p)
      try s.sorted(Comparator.reverseOrder[Path]()).forEach(f => Files.deleteIfExists(f)) finally s.close()
    }
}
