package io.gophas.spark

/**
 * GophasException is what every Gophas failure surfaces as on the JVM: a
 * worker or driver process error (carrying the Go error text), a missing or
 * mismatched binary, a stalled pipe.
 */
class GophasException(message: String, cause: Throwable = null) extends RuntimeException(message, cause)
