//go:build integration

package test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// TestSyncSwitchover: in synchronous mode a switchover goes only to a
// synchronous standby. POST /switchover naming the asynchronous replica is
// refused with 412 "candidate name does not match with sync_standby" and
// changes nothing (the contract's §1.6.1, Patroni's api.py); naming the
// standby in /sync succeeds, and the new primary writes its own /sync with
// a standby of its own. No acknowledged row is lost.
//
//	go test -tags integration -count=1 -run '^TestSyncSwitchover$' -v ./test/
func TestSyncSwitchover(t *testing.T) {
	forSyncDaemons(t, func(t *testing.T, d Daemon) {
		c, p, s := startSyncCluster(t, d, 3, Fast, nodeconf.Sync{})
		a := c.Others(p, s)[0]
		w := StartWriter(t, c, p)
		WaitFor(t, 10*time.Second, "some writes", func() bool { return w.Acked() > 50 })

		code, text := p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": a.Name})
		t.Logf("switchover to the asynchronous %s: %d %q", a.Name, code, text)
		if code != http.StatusPreconditionFailed || !strings.Contains(text, "candidate name does not match with sync_standby") {
			t.Errorf("switchover to the asynchronous replica %s: %d %q, want 412 %q", a.Name, code, text,
				"candidate name does not match with sync_standby")
		}
		if v, ok := c.EtcdKey(t.Context(), "failover"); ok && strings.Contains(v, a.Name) {
			t.Errorf("the refused switchover left a /failover key: %s", v)
		}
		// Two loops: nothing may follow the refusal; the leader key is sampled throughout.
		moved := pollFor(time.Duration(2*Fast.LoopWait)*time.Second, func() bool { return c.LeaderKey() != p.Name })
		if k := c.LeaderKey(); moved || k != p.Name {
			t.Fatalf("leader key %q after a refused switchover (was %s)", k, p.Name)
		}

		start := time.Now()
		code, text = p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": s.Name})
		t.Logf("switchover to the synchronous standby %s: %d %q after %.1fs", s.Name, code, text, time.Since(start).Seconds())
		if code != http.StatusOK {
			t.Fatalf("switchover to the synchronous standby %s: %d %q, want 200", s.Name, code, text)
		}
		if k := c.LeaderKey(); k != s.Name {
			t.Fatalf("leader key %q after switching over to %s", k, s.Name)
		}
		np, ns := c.WaitSync(bootTimeout)
		if np != s {
			t.Fatalf("primary %s after switching over to %s", np.Name, s.Name)
		}
		t.Logf("new primary %s, its synchronous standby %s; write outage %v", np.Name, ns.Name, w.Outage(start, time.Now()).Round(time.Millisecond))
		w.WaitAckAfter(t, 30*time.Second, time.Now())
		if lost := w.Lost(t, np); len(lost) > 0 {
			t.Errorf("%d acknowledged rows lost in the switchover (first ids %v)", len(lost), lost[:min(10, len(lost))])
		}
	})
}

// TestSyncPatronictlList: Debian's patronictl 3.0.2 (`patronictl list`)
// shows the standby in /sync as "Sync Standby", the other as "Replica".
//
//	go test -tags integration -count=1 -run '^TestSyncPatronictlList$' -v ./test/
func TestSyncPatronictlList(t *testing.T) {
	forSyncDaemons(t, func(t *testing.T, d Daemon) {
		c, p, s := startSyncCluster(t, d, 3, Fast, nodeconf.Sync{})
		ctl := newPatronictl(t, c)
		a := c.Others(p, s)[0]
		want := map[string]string{p.Name: "Leader", s.Name: "Sync Standby", a.Name: "Replica"}
		var last []ctlRow
		ok := pollFor(30*time.Second, func() bool {
			last = ctl.list(c.Scope)
			if len(last) != len(want) {
				return false
			}
			for _, r := range last {
				if want[r.Member] != r.Role || r.State != "running" && r.State != "streaming" {
					return false
				}
			}
			return true
		})
		if !ok {
			t.Fatalf("patronictl list: want roles %v, got %+v", want, last)
		}
		t.Logf("patronictl list:\n%s", ctl.must("list", c.Scope))
	})
}
