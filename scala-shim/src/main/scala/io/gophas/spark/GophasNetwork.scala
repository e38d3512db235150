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
 */
final class GophasNetwork(val spec: String, weightBytes: Array[Byte]) extends Serializable {
  require(spec != null && spec.nonEmpty, "a network needs a spec")
  require(weightBytes != null, "a network needs weights")

  private val weightsCopy = weightBytes.clone()

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
   * Existing files of those names are replaced, other files are left. Both
   * files are written under temporary names first and renamed into place
   * only when both are complete, so a save that fails (a full disk, a lost
   * connection) leaves the previous files as they were.
   */
  def save(path: String): Unit = save(path, new Configuration())

  def save(path: String, hadoopConf: Configuration): Unit = {
    val dir = new HPath(path)
    val fs = dir.getFileSystem(hadoopConf)
    val suffix = s".tmp-${java.util.UUID.randomUUID()}"
    val files = Seq(GophasNetwork.WeightsFile -> weightsCopy, GophasNetwork.SpecFile -> spec.getBytes(StandardCharsets.UTF_8))
    val temps = files.map { case (name, _) => new HPath(dir, s".$name$suffix") }
    try {
      fs.mkdirs(dir)
      files.zip(temps).foreach { case ((_, bytes), tmp) =>
        val out = fs.create(tmp, true)
        try out.write(bytes) finally out.close()
      }
      files.zip(temps).foreach { case ((name, _), tmp) =>
        val dst = new HPath(dir, name)
        if (fs.exists(dst)) fs.delete(dst, false)
        if (!fs.rename(tmp, dst)) throw new java.io.IOException(s"cannot rename $tmp to $dst")
      }
    } catch {
      case NonFatal(e) =>
        temps.foreach(t => try fs.delete(t, false) catch { case NonFatal(_) => })
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
    new GophasNetwork(new String(get(SpecFile), StandardCharsets.UTF_8), get(WeightsFile))
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
