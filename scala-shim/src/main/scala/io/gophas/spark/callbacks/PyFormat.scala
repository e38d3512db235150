package io.gophas.spark.callbacks

import java.math.{BigDecimal => JBigDecimal, RoundingMode}
import java.util.Locale

import io.gophas.spark.GophasException

/**
 * Python's ways of writing numbers, as Keras' callbacks write them:
 * `repr(float)` (CSVLogger's cells) and `str.format` fields such as
 * `{epoch:02d}` or `{val_loss:.4f}` (ModelCheckpoint's file path).
 */
private[spark] object PyFormat {

  /** Python's repr of a float: the shortest digits that read back, fixed between 1e-4 and 1e16, else d.ddde±XX. */
  def repr(v: Double): String = {
    if (v.isNaN) return "nan"
    if (v.isInfinite) return if (v > 0) "inf" else "-inf"
    if (v == 0) return if (1 / v < 0) "-0.0" else "0.0"
    // Java's Double.toString gives the shortest digits that read back.
    val bd = new JBigDecimal(java.lang.Double.toString(v)).stripTrailingZeros()
    val digits = bd.unscaledValue().abs().toString
    val exp = digits.length - 1 - bd.scale() // decimal exponent of the first digit
    val sign = if (v < 0) "-" else ""
    if (exp >= -4 && exp < 16) {
      val plain = bd.abs().toPlainString
      sign + (if (plain.contains('.')) plain else plain + ".0")
    } else {
      val mant = if (digits.length == 1) digits else digits.head.toString + "." + digits.tail
      sign + mant + "e" + (if (exp < 0) "-" else "+") + f"${math.abs(exp)}%02d"
    }
  }

  /** Python's str(x) for a format value: repr for floats. */
  private def str(x: Any): String = x match {
    case d: Double => repr(d)
    case f: Float => repr(f.toDouble)
    case other => other.toString
  }

  /**
   * Python's `pattern.format(**values)` for the fields Keras' ModelCheckpoint
   * paths use: `{name}` and `{name:spec}` with spec
   * `[[fill]align][sign][0][width][,][.precision][type]`, type one of d, f,
   * F, e, E, g, G, %, s or none; `{{` and `}}` for braces. A name not in
   * values is a GophasException naming it.
   */
  def format(pattern: String, values: Map[String, Any]): String = {
    val out = new StringBuilder
    var i = 0
    while (i < pattern.length) {
      val c = pattern.charAt(i)
      if (c == '{' && i + 1 < pattern.length && pattern.charAt(i + 1) == '{') { out += '{'; i += 2 }
      else if (c == '}' && i + 1 < pattern.length && pattern.charAt(i + 1) == '}') { out += '}'; i += 2 }
      else if (c == '{') {
        val end = pattern.indexOf('}', i)
        if (end < 0) throw new GophasException(s"cannot format '$pattern': a '{' has no '}'")
        val field = pattern.substring(i + 1, end)
        val (name, spec) = field.indexOf(':') match {
          case -1 => (field, "")
          case k => (field.substring(0, k), field.substring(k + 1))
        }
        val v = values.getOrElse(name, throw new GophasException(
          s"cannot format '$pattern': no '$name' (the logs have ${values.keys.toSeq.sorted.mkString(", ")})"))
        out ++= formatValue(v, spec, pattern)
        i = end + 1
      } else { out += c; i += 1 }
    }
    out.toString
  }

  private val SpecRe = """^(?:(.)?([<>=^]))?([+\- ])?(0)?(\d+)?(,)?(?:\.(\d+))?([dfFeEgGs%])?$""".r

  private def formatValue(v: Any, spec: String, pattern: String): String = {
    if (spec.isEmpty) return str(v)
    val m = SpecRe.findFirstMatchIn(spec).getOrElse(throw new GophasException(s"cannot format '$pattern': unsupported format spec '$spec'"))
    val fill = Option(m.group(1)).map(_.head)
    val align = Option(m.group(2))
    val sign = Option(m.group(3)).getOrElse("-")
    val zero = m.group(4) != null
    val width = Option(m.group(5)).map(_.toInt).getOrElse(0)
    val comma = m.group(6) != null
    val precision = Option(m.group(7)).map(_.toInt)
    val kind = Option(m.group(8))
    val num: Option[Double] = v match {
      case i: Int => Some(i.toDouble)
      case l: Long => Some(l.toDouble)
      case d: Double => Some(d)
      case f: Float => Some(f.toDouble)
      case _ => None
    }
    val isInt = v.isInstanceOf[Int] || v.isInstanceOf[Long]
    val body: String = (kind, num) match {
      case (Some("s"), _) | (None, None) => str(v)
      case (Some("d"), Some(_)) if isInt => groupDigits(math.abs(v.toString.toLong).toString, comma)
      case (Some("d"), _) => throw new GophasException(s"cannot format '$pattern': '$spec' wants an integer, got ${str(v)}")
      case (k, Some(d)) if d.isNaN || d.isInfinite =>
        val s = if (d.isNaN) "nan" else "inf"
        if (k.exists(x => x == "F" || x == "E" || x == "G")) s.toUpperCase(Locale.ROOT) else s
      case (Some("f" | "F"), Some(d)) => fixed(math.abs(d), precision.getOrElse(6), comma)
      case (Some("%"), Some(d)) => fixed(math.abs(d) * 100, precision.getOrElse(6), comma) + "%"
      case (Some("e" | "E"), Some(d)) =>
        val s = sci(math.abs(d), precision.getOrElse(6))
        if (kind.contains("E")) s.toUpperCase(Locale.ROOT) else s
      case (Some("g" | "G"), Some(d)) =>
        val s = general(math.abs(d), precision.getOrElse(6), alt = false)
        if (kind.contains("G")) s.toUpperCase(Locale.ROOT) else s
      case (None, Some(d)) if isInt => groupDigits(math.abs(d.toLong).toString, comma)
      case (None, Some(d)) => precision match {
        case Some(p) => general(math.abs(d), p, alt = true)
        case None => repr(math.abs(d))
      }
      case _ => str(v)
    }
    val negative = num.exists(d => d < 0 || (d == 0 && 1 / d < 0 && !isInt)) && !(kind.contains("s") || num.isEmpty)
    val signStr = if (num.isEmpty || kind.contains("s")) "" else if (negative) "-" else sign match {
      case "+" => "+"
      case " " => " "
      case _ => ""
    }
    val content = signStr + body
    if (content.length >= width) return content
    val pad = width - content.length
    val (f, a) = (fill, align) match {
      case (_, Some(al)) => (fill.getOrElse(' '), al)
      case (None, None) if zero && num.isDefined => ('0', "=")
      case _ => (' ', if (num.isDefined && !kind.contains("s")) ">" else "<")
    }
    a match {
      case "<" => content + f.toString * pad
      case ">" => f.toString * pad + content
      case "^" => f.toString * (pad / 2) + content + f.toString * (pad - pad / 2)
      case _ => signStr + f.toString * pad + body // "=": padding after the sign
    }
  }

  private def groupDigits(intPart: String, comma: Boolean): String =
    if (!comma) intPart else intPart.reverse.grouped(3).mkString(",").reverse

  private def fixed(d: Double, p: Int, comma: Boolean): String = {
    val s = new JBigDecimal(d).setScale(p, RoundingMode.HALF_EVEN).toPlainString
    if (!comma) s else {
      val dot = s.indexOf('.')
      val (ip, fp) = if (dot < 0) (s, "") else (s.substring(0, dot), s.substring(dot))
      groupDigits(ip, comma = true) + fp
    }
  }

  private def sci(d: Double, p: Int): String = {
    if (d == 0) return (if (p > 0) "0." + "0" * p else "0") + "e+00"
    val bd = new JBigDecimal(d).round(new java.math.MathContext(p + 1, RoundingMode.HALF_EVEN))
    val digits = bd.unscaledValue().toString
    val exp = digits.length - 1 - bd.scale()
    val padded = (digits + "0" * (p + 1)).take(p + 1)
    val mant = if (p > 0) padded.head.toString + "." + padded.tail else padded.head.toString
    mant + "e" + (if (exp < 0) "-" else "+") + f"${math.abs(exp)}%02d"
  }

  /** Python's 'g' (alt: the no-type form with a precision, which keeps a ".0"). */
  private def general(d: Double, p0: Int, alt: Boolean): String = {
    val p = if (p0 == 0) 1 else p0
    if (d == 0) return if (alt) "0.0" else "0"
    val bd = new JBigDecimal(d).round(new java.math.MathContext(p, RoundingMode.HALF_EVEN))
    val exp = bd.precision() - 1 - bd.scale()
    if (exp >= -4 && exp < p) {
      val s = bd.setScale(math.max(p - 1 - exp, 0), RoundingMode.HALF_EVEN).toPlainString
      val t = if (s.contains('.')) s.reverse.dropWhile(_ == '0').dropWhile(_ == '.').reverse else s
      if (alt && !t.contains('.')) t + ".0" else t
    } else {
      val s = sci(d, p - 1)
      val (mant, e) = s.splitAt(s.indexOf('e'))
      val m = if (mant.contains('.')) mant.reverse.dropWhile(_ == '0').dropWhile(_ == '.').reverse else mant
      m + e
    }
  }
}
