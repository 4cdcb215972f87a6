package proc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// A replica promoted behind pgnoded's back (pg_promote()) is on timeline 2
// while the primary stays on timeline 1. Stopped before its first checkpoint
// on timeline 2, its pg_control checkpoint is still on timeline 1: pg_rewind,
// which judges the target by that checkpoint, answers "same timeline, no
// rewind required" and the node could never stream again. Rewind must bring
// it back either way: stopped right after the demotion (immediate stop), or
// first restarted as a replica that cannot stream and then stopped cleanly.
func TestRewindRogueAheadOfSource(t *testing.T) {
	for _, restartedAsReplica := range []bool{false, true} {
		name := "stopped right after the demotion"
		if restartedAsReplica {
			name = "restarted as a replica first"
		}
		t.Run(name, func(t *testing.T) { testRewindRogue(t, restartedAsReplica) })
	}
}

func testRewindRogue(t *testing.T, restartedAsReplica bool) {
	a := newTestNode(t, testConfig(t, "rg-a"))
	// A slow, spread checkpoint after the promotion (many buffers dirtied by
	// replaying the insert below, and a
	// long checkpoint_timeout) keeps the rogue's last checkpoint on timeline 1.
	bcfg := testConfig(t, "rg-b")
	bcfg.Parameters["checkpoint_timeout"] = "1h"
	b := newTestNode(t, bcfg)
	ctx := opCtx(t)

	a.initAndStartPrimary(ctx)
	a.must(a.p.execSQL(ctx, "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '"+strings.ReplaceAll(testReplPassword, "'", "''")+"'"), "create role")
	a.must(a.p.execSQL(ctx, "SELECT pg_create_physical_replication_slot($1)", cluster.SlotName("rg-b")), "slot")
	a.must(a.p.execSQL(ctx, "CREATE TABLE t (id int primary key)"), "create table")
	b.must(b.p.Clone(ctx, a.source(), cluster.CloneOptions{}), "clone")
	b.must(b.p.Start(ctx, replicaOpts("rg-b", a)), "start replica")
	a.must(a.p.execSQL(ctx, "INSERT INTO t SELECT generate_series(1000, 100000)"), "insert many")
	a.must(a.p.execSQL(ctx, "INSERT INTO t VALUES (1)"), "insert 1")
	waitRow(t, ctx, b, 1)

	// The rogue promotion, a write on each side, and the demotion.
	b.must(b.p.execSQL(ctx, "SELECT pg_promote(true, 30)"), "pg_promote")
	eventually(t, 30*time.Second, "rg-b writable", func() (bool, string) {
		o := b.p.Observe(ctx)
		return o.Ready && !o.InRecovery, o.Err
	})
	b.must(b.p.execSQL(ctx, "INSERT INTO t VALUES (99)"), "write on the rogue")
	a.must(a.p.execSQL(ctx, "INSERT INTO t VALUES (2)"), "write on the primary")
	b.must(b.p.Stop(ctx, cluster.StopImmediate), "demote the rogue")
	cd := controlData(t, ctx, b)
	t.Logf("rogue after the immediate stop: %+v", cd)
	if cd.TimelineID != 1 || cd.MinRecoveryEndTimeline != 2 {
		t.Logf("the rogue's checkpoint already moved to timeline 2: pg_rewind's first answer is right; the retry path is not exercised")
	}

	if restartedAsReplica {
		b.must(b.p.Start(ctx, replicaOpts("rg-b", a)), "restart the rogue as a replica")
		eventually(t, 30*time.Second, "rg-b on timeline 2, not streaming", func() (bool, string) {
			o := b.p.Observe(ctx)
			return o.Ready && o.InRecovery && o.Timeline == 2, fmt.Sprintf("tl=%d streaming=%v %s", o.Timeline, o.Streaming, o.Err)
		})
		b.must(b.p.Stop(ctx, cluster.StopFast), "stop the rogue replica")
		t.Logf("rogue replica after a fast stop: %+v", controlData(t, ctx, b))
	}

	a.must(a.p.execSQL(ctx, "INSERT INTO t VALUES (3)"), "write on the primary")
	b.must(b.p.Rewind(ctx, a.source()), "rewind")
	cd = controlData(t, ctx, b)
	if cd.TimelineID != 1 || cd.MinRecoveryEndTimeline > 1 {
		t.Errorf("after pg_rewind the rogue is not back on timeline 1: %+v", cd)
	}
	b.must(b.p.Start(ctx, replicaOpts("rg-b", a)), "start the rewound rogue as a replica")
	waitRow(t, ctx, b, 3)
	eventually(t, 30*time.Second, "rewound rogue streams on timeline 1", func() (bool, string) {
		o := b.p.Observe(ctx)
		return o.InRecovery && o.Streaming && o.Timeline == 1, fmt.Sprintf("tl=%d streaming=%v %s", o.Timeline, o.Streaming, o.Err)
	})
	if v, err := b.queryOne(ctx, "SELECT count(*) FROM t WHERE id = 99"); err != nil || v != "0" {
		t.Errorf("the rogue's write survived the rewind: %q, %v", v, err)
	}
}

func controlData(t *testing.T, ctx context.Context, n *testNode) cluster.ControlData {
	t.Helper()
	cd, err := n.p.ControlData(ctx)
	n.must(err, "pg_controldata")
	return cd
}
