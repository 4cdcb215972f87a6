// Command pgnoded-fence-guard is pgnoded's out-of-process fencing guard on
// its own: pgnoded spawns it (it is not run by hand) so that a frozen or
// dead pgnoded still has its postgres demoted and its VIP released before
// the leader lease can expire. It links only the guard and the VIP release,
// a fraction of the daemon's size and resident memory.
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/pgnoded/pgnoded/internal/fence"
	"github.com/pgnoded/pgnoded/internal/vip"
)

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	os.Exit(fence.GuardMain(os.Args[1:], os.Stderr, releaseVIP))
}

// releaseVIP is the guard's OnFence: take the VIP off this node.
func releaseVIP(ctx context.Context, r fence.Release) error {
	return vip.Release(ctx, r.Address, r.Interface, r.LocalIP)
}
