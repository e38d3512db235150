// Package parent ties a Gophas process (a worker or the driver) to the
// process that started it: a goroutine polls the parent process id, and
// when it changes (the parent exited and the process was re-parented) the
// process exits, so that a killed executor or driver JVM leaves no orphan.
//
// It follows the parent process, not a thread: Linux's parent-death signal
// (PR_SET_PDEATHSIG) fires when the thread that spawned the child exits,
// and the JVM starts the driver from short-lived threads (a py4j call, a
// task thread), which killed the driver mid-fit while its JVM lived on.
// Stdin EOF covers an orderly parent; polling covers a killed one.
package parent
