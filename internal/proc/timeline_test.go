package proc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// A replica that followed a timeline switch keeps reporting the new timeline
// after its upstream dies. Postgres alone then reports the last restartpoint's
// timeline (the old one), which made the HA loop judge healthy replicas
// "diverged" and try to pg_rewind from the dead leader during a failover.
func TestReplicaKeepsTimelineAfterUpstreamDies(t *testing.T) {
	a := newTestNode(t, testConfig(t, "tl-a"))
	b := newTestNode(t, testConfig(t, "tl-b"))
	c := newTestNode(t, testConfig(t, "tl-c"))
	ctx := opCtx(t)

	a.initAndStartPrimary(ctx)
	a.must(a.p.execSQL(ctx, "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '"+strings.ReplaceAll(testReplPassword, "'", "''")+"'"), "create role")
	for _, n := range []string{"tl-b", "tl-c"} {
		a.must(a.p.execSQL(ctx, "SELECT pg_create_physical_replication_slot($1)", cluster.SlotName(n)), "slot")
	}
	for _, r := range []*testNode{b, c} {
		r.must(r.p.Clone(ctx, a.source(), cluster.CloneOptions{}), "clone")
		r.must(r.p.Start(ctx, replicaOpts(r.cfg.Name, a)), "start replica")
	}
	// b becomes the primary of timeline 2; c is repointed to it and streams timeline 2.
	b.must(b.p.Promote(ctx), "promote b")
	b.must(b.p.execSQL(ctx, "SELECT pg_create_physical_replication_slot($1)", cluster.SlotName("tl-c")), "slot on b")
	c.must(c.p.Stop(ctx, cluster.StopFast), "stop c")
	c.must(c.p.Start(ctx, replicaOpts("tl-c", b)), "restart c following b")
	eventually(t, 30*time.Second, "c streams timeline 2 from b", func() (bool, string) {
		o := c.p.Observe(ctx)
		return o.Streaming && o.ReceiverTLI == 2 && o.Timeline == 2, fmt.Sprintf("tl=%d rtli=%d %s", o.Timeline, o.ReceiverTLI, o.Err)
	})
	b.must(b.p.execSQL(ctx, "CREATE TABLE after_switch (id int)"), "write on timeline 2")

	// b dies; c's WAL receiver stops.
	b.must(b.p.Stop(ctx, cluster.StopImmediate), "kill b")
	eventually(t, 30*time.Second, "c reports timeline 2 with no WAL receiver", func() (bool, string) {
		o := c.p.Observe(ctx)
		return o.Ready && o.InRecovery && !o.Streaming && o.Timeline == 2, fmt.Sprintf("tl=%d streaming=%v %s", o.Timeline, o.Streaming, o.Err)
	})
	cp, _ := c.queryOne(ctx, "SELECT timeline_id FROM pg_control_checkpoint()")
	t.Logf("c's last restartpoint is on timeline %s; pgnoded reports %d", cp, c.p.Observe(ctx).Timeline)
}
