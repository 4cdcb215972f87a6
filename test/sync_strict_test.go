//go:build integration

package test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// TestSyncStrictDoubleFailure: synchronous_mode_strict, 3 nodes. The primary
// and its synchronous standby die together (daemon, then postgres). The
// remaining replica was asynchronous: it may have missed acknowledged
// commits, so it must not be promoted (no leader, writes stay down) however
// long we wait. Bringing the synchronous standby back lets it take over, with
// every acknowledged row. Timings are logged, not asserted.
//
//	go test -tags integration -count=1 -run '^TestSyncStrictDoubleFailure$' -v ./test/
func TestSyncStrictDoubleFailure(t *testing.T) {
	forSyncDaemons(t, func(t *testing.T, d Daemon) {
		c, p, s := startSyncCluster(t, d, 3, Fast, nodeconf.Sync{Strict: true})
		a := c.Others(p, s)[0]
		w := StartWriter(t, c, p)
		WaitFor(t, 10*time.Second, "some writes", func() bool { return w.Acked() > 50 })

		killedAt := time.Now()
		p.NodeLoss()
		s.NodeLoss()
		t.Logf("killed the primary %s and the synchronous standby %s; %s (asynchronous) remains", p.Name, s.Name, a.Name)

		// Past the lease and several loops: the async replica must stay a replica.
		hold := time.Duration(Fast.TTL+4*Fast.LoopWait+6) * time.Second
		var bad []string
		pollFor(hold, func() bool {
			switch {
			case a.Check("/primary") == http.StatusOK:
				bad = append(bad, time.Now().Format("15:04:05.000")+" "+a.Name+" answered 200 on /primary")
			case c.LeaderKey() == a.Name:
				bad = append(bad, time.Now().Format("15:04:05.000")+" the leader key named "+a.Name)
			case a.Writable(context.Background()):
				bad = append(bad, time.Now().Format("15:04:05.000")+" "+a.Name+"'s postgres was writable")
			}
			return false
		})
		if len(bad) > 0 {
			t.Errorf("the asynchronous replica %s was promoted in strict mode with the primary and the sync standby gone (%d samples; first: %s)",
				a.Name, len(bad), bad[0])
		}
		if !a.InRecovery() {
			t.Errorf("%s is not a running replica after %v", a.Name, hold)
		}
		if k := c.LeaderKey(); k != "" {
			t.Errorf("leader key %q while the primary and the sync standby are down", k)
		}
		if late := w.AckedSentAfter(killedAt.Add(time.Second)); late > 0 {
			t.Errorf("%d writes sent more than 1 s after the double failure were acknowledged", late)
		}
		t.Logf("%v after the double failure: no leader, %s still a replica", hold.Round(time.Second), a.Name)

		backAt := time.Now()
		s.Start()
		np := c.WaitPrimary(bootTimeout, nil)
		if np != s {
			t.Fatalf("%s took over after the sync standby %s came back", np.Name, s.Name)
		}
		resumed := w.WaitWritesResume(t, bootTimeout, backAt)
		t.Logf("%s came back and took over: writes %.1fs after its restart", s.Name, resumed.Sub(backAt).Seconds())
		if lost := w.Lost(t, s); len(lost) > 0 {
			t.Errorf("%d acknowledged rows lost (first ids %v)", len(lost), lost[:min(10, len(lost))])
		}
	})
}

// TestSyncStrictAllReplicasStopped: synchronous_mode_strict, 3 nodes, every
// replica stopped. A commit on the primary waits (strict mode never commits
// unprotected) while the primary keeps its leader key; a replica coming back
// (the one that was asynchronous) releases it, and has the row.
//
//	go test -tags integration -count=1 -run '^TestSyncStrictAllReplicasStopped$' -v ./test/
func TestSyncStrictAllReplicasStopped(t *testing.T) {
	forSyncDaemons(t, func(t *testing.T, d Daemon) {
		c, p, s := startSyncCluster(t, d, 3, Fast, nodeconf.Sync{Strict: true})
		a := c.Others(p, s)[0]
		ctx := context.Background()
		conn, err := p.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, "create table sync_strict(id int primary key)")
		if err != nil {
			conn.Close(ctx)
			t.Fatal(err)
		}
		for _, r := range c.Others(p) {
			r.NodeLoss()
		}
		stoppedAt := time.Now()

		done := make(chan error, 1)
		go func() { // owns conn; ends with the commit, its 3-minute deadline or the cluster's teardown
			defer conn.Close(context.Background())
			qctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			defer cancel()
			_, err := conn.Exec(qctx, "insert into sync_strict values (1)")
			done <- err
		}()
		// Longer than a few loops: the primary has seen its standbys go.
		wait := time.Duration(3*Fast.LoopWait+6) * time.Second
		select {
		case err := <-done:
			t.Fatalf("the commit returned %v after %.1fs with every replica stopped (strict mode: it must wait)",
				err, time.Since(stoppedAt).Seconds())
		case <-time.After(wait):
		}
		if code := p.Check("/primary"); code != http.StatusOK {
			t.Errorf("the primary %s answers %d on /primary while its commit waits", p.Name, code)
		}
		if k := c.LeaderKey(); k != p.Name {
			t.Errorf("leader key %q while %s waits for a standby", k, p.Name)
		}
		t.Logf("commit waiting %v with every replica stopped; synchronous_standby_names = %q", wait, showSSN(p))

		backAt := time.Now()
		a.Start()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the waiting commit failed once %s came back: %v", a.Name, err)
			}
			t.Logf("%s came back: the commit returned %.1fs after its restart", a.Name, time.Since(backAt).Seconds())
		case <-time.After(bootTimeout):
			t.Fatalf("the commit still waits %v after %s came back", bootTimeout, a.Name)
		}
		WaitFor(t, 30*time.Second, "the row on "+a.Name, func() bool {
			n, err := a.QueryString("select count(*)::text from sync_strict where id = 1")
			return err == nil && n == "1"
		})
	})
}

// AckedSentAfter counts acknowledged writes sent after at.
func (w *Writer) AckedSentAfter(at time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.acks {
		if a.Sent.After(at) {
			n++
		}
	}
	return n
}
