// Package fence is pgnoded's out-of-process fencing guard: a small separate
// process, patted over a unix socket by the HA loop, that stops postgres when
// the primary's lease could have expired without a pat (a frozen pgnoded).
//
// The guard is the pgnoded binary re-executed with the GuardSubcommand; Spawn
// starts it detached (its own session, reparented away from pgnoded) unless
// one already answers, RunGuard is its body, and Client is the HA loop's side
// (it satisfies ha.Fence). Deadlines cross the process boundary as
// CLOCK_BOOTTIME instants, which both processes read from the same kernel.
package fence
