package io.gophas.spark

import java.io.InputStream
import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path, Paths, StandardCopyOption}
import java.nio.file.attribute.PosixFilePermissions
import java.security.MessageDigest
import java.util.concurrent.{ConcurrentHashMap, TimeUnit}

import scala.collection.mutable.ArrayBuffer
import scala.util.control.NonFatal

import org.apache.spark.SparkFiles
import org.apache.spark.internal.Logging

/**
 * GophasBinary finds the gophas executable for this JVM, once: the path in
 * `spark.gophas.binary`, else a file named `gophas` shipped with `--files`,
 * else the static Linux build embedded in the jar, unpacked once per JVM into
 * a directory keyed by its SHA-256. Before a path is used, `gophas version`
 * must report this shim's protocol version. A failure lists every path tried
 * and why it was refused.
 */
object GophasBinary extends Logging {
  private val resolved = new ConcurrentHashMap[String, Path]()

  /** The binary to run, resolved and checked once per JVM and configuration. */
  def get(binary: Option[String], unpackDir: Option[String]): Path = {
    SparkLine.get // a jar built for another Spark line fails here, naming the right one
    resolved.computeIfAbsent(binary.getOrElse("") + "|" + unpackDir.getOrElse(""), _ => resolve(binary, unpackDir))
  }

  private def resolve(configured: Option[String], unpackDir: Option[String]): Path = {
    val tried = ArrayBuffer.empty[String]
    def attempt(what: String, find: => Option[Path]): Option[Path] = {
      try {
        find match {
          case None => None
          case Some(p) =>
            checkVersion(p) match {
              case None => Some(p)
              case Some(why) => tried += s"$what $p: $why"; None
            }
        }
      } catch {
        case NonFatal(e) => tried += s"$what: ${e.getMessage}"; None
      }
    }
    val found = configured match {
      case Some(p) =>
        // An explicit choice is the only one tried: falling back would hide the mistake.
        attempt(s"${GophasConf.Binary}", Some(locate(p)))
      case None =>
        attempt("file shipped with --files", shipped())
          .orElse(attempt("binary embedded in the jar", Some(unpackEmbedded(unpackDir))))
    }
    found match {
      case Some(p) =>
        logInfo(s"using gophas binary $p")
        p
      case None =>
        val list = if (tried.isEmpty) "nothing to try" else tried.mkString("\n  ", "\n  ", "")
        throw new GophasException(s"no usable gophas binary (protocol ${Protocol.Version}); tried:$list\n" +
          s"set ${GophasConf.Binary} to a gophas built from the same release as this jar")
    }
  }

  /** A configured path, or a bare name shipped with --files. */
  private def locate(p: String): Path = {
    val direct = Paths.get(p)
    if (Files.exists(direct)) direct
    else {
      val inFiles = try Some(Paths.get(SparkFiles.get(p))) catch { case NonFatal(_) => None }
      inFiles.filter(Files.exists(_)).getOrElse(throw new GophasException(s"$p does not exist"))
    }
  }

  private def shipped(): Option[Path] =
    try Some(Paths.get(SparkFiles.get("gophas"))).filter(Files.isRegularFile(_))
    catch { case NonFatal(_) => None }

  /** linux-amd64 or linux-arm64, as the jar's resources are named. */
  private[spark] def platform: String = {
    val os = System.getProperty("os.name").toLowerCase
    val arch = System.getProperty("os.arch") match {
      case "amd64" | "x86_64" => "amd64"
      case "aarch64" | "arm64" => "arm64"
      case other => other
    }
    if (!os.contains("linux")) throw new GophasException(s"no embedded gophas binary for $os/$arch; set ${GophasConf.Binary}")
    s"linux-$arch"
  }

  private def resource(name: String): InputStream = {
    val path = s"/io/gophas/spark/native/$platform/$name"
    val in = getClass.getResourceAsStream(path)
    if (in == null) throw new GophasException(s"the jar has no resource $path (was it built with `make jar`?)")
    in
  }

  private def unpackEmbedded(unpackDir: Option[String]): Path = {
    val expected = {
      val in = resource("gophas.sha256")
      try new String(in.readAllBytes(), StandardCharsets.US_ASCII).trim
      finally in.close()
    }
    val base = unpackDir.getOrElse(System.getProperty("java.io.tmpdir"))
    val dir = Paths.get(base, s"gophas-${System.getProperty("user.name")}", expected.take(16))
    val target = dir.resolve("gophas")
    if (Files.isRegularFile(target) && sha256(target) == expected) return target
    Files.createDirectories(dir)
    val tmp = Files.createTempFile(dir, "gophas", ".tmp")
    try {
      val in = resource("gophas")
      try Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING) finally in.close()
      val got = sha256(tmp)
      if (got != expected) throw new GophasException(s"embedded binary has SHA-256 $got, its .sha256 says $expected")
      Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"))
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING)
    } finally Files.deleteIfExists(tmp)
    target
  }

  private def sha256(p: Path): String = {
    val md = MessageDigest.getInstance("SHA-256")
    val in = Files.newInputStream(p)
    try {
      val buf = new Array[Byte](1 << 16)
      var n = in.read(buf)
      while (n >= 0) { md.update(buf, 0, n); n = in.read(buf) }
    } finally in.close()
    md.digest().map(b => f"${b & 0xff}%02x").mkString
  }

  private val ProtocolField = "\"protocol\"\\s*:\\s*(\\d+)".r

  /** Runs `gophas version`; None when it reports our protocol, else why not. */
  private[spark] def checkVersion(p: Path): Option[String] = {
    if (!Files.isExecutable(p)) return Some("not executable")
    val proc = new ProcessBuilder(p.toString, "version").redirectErrorStream(true).start()
    proc.getOutputStream.close()
    val done = proc.waitFor(30, TimeUnit.SECONDS)
    if (!done) { proc.destroyForcibly(); return Some("`gophas version` did not answer within 30 s") }
    val out = new String(proc.getInputStream.readAllBytes(), StandardCharsets.UTF_8).trim
    if (proc.exitValue() != 0) return Some(s"`gophas version` exited ${proc.exitValue()}: $out")
    ProtocolField.findFirstMatchIn(out).map(_.group(1).toInt) match {
      case Some(Protocol.Version) => None
      case Some(v) => Some(s"speaks protocol $v, this jar speaks ${Protocol.Version}")
      case None => Some(s"`gophas version` printed no protocol: $out")
    }
  }

  private[spark] def forget(): Unit = resolved.clear()
}
