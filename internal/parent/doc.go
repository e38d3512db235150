// Package parent ties a Gophas process (a worker or the driver) to the
// process that started it: on Linux it asks for SIGKILL when the parent's
// thread exits, so that a killed executor or driver JVM leaves no orphan.
package parent
