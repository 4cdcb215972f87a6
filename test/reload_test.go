//go:build integration

package test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// haInter and haFall are the check interval and fall count of haproxyTmpl.
const (
	haInter = time.Second
	haFall  = 2
)

// TestReloadNoLoadBalanceTakesReplicaOutOfHAProxy writes noloadbalance: true
// into a replica's config file and sends SIGHUP: /replica answers 503 at
// once (the published snapshot changes in the reload itself), HAProxy's
// /replica service marks the node DOWN within fall × inter + 1 s, and the
// member key carries the tag; a pg_hba line added in the same edit is in
// force in postgres. Setting the tag back (POST /reload) brings the node back.
func TestReloadNoLoadBalanceTakesReplicaOutOfHAProxy(t *testing.T) {
	c, p := bootCluster(t, Fast)
	h := StartHAProxy(t, c, p)
	h.WaitStates(30*time.Second, "before the reload", expectedView(c, p, p, nil))
	r := c.Others(p)[0]
	if code := r.Check("/replica"); code != 200 {
		t.Fatalf("%s /replica = %d before the reload", r.Name, code)
	}

	setTag := func(on bool, reload func()) time.Time {
		t.Helper()
		b, err := os.ReadFile(r.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		from, to := "noloadbalance: false", "noloadbalance: true"
		if !on {
			from, to = to, from
		}
		if !strings.Contains(string(b), from) {
			t.Fatalf("config of %s has no %q", r.Name, from)
		}
		text := strings.Replace(string(b), from, to, 1)
		if on { // and a pg_hba line, applied by the same reload
			text = strings.Replace(text, "  pg_hba:\n", "  pg_hba:\n    - host all all 127.0.0.2/32 md5\n", 1)
		}
		if err := os.WriteFile(r.ConfigPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		reload()
		return at
	}

	hupAt := setTag(true, func() { r.Signal(syscall.SIGHUP) })
	var answered503 time.Duration
	WaitFor(t, 10*time.Second, r.Name+" /replica 503 after SIGHUP", func() bool {
		if r.Check("/replica") == 503 {
			answered503 = time.Since(hupAt)
			return true
		}
		return false
	})
	var down time.Duration
	WaitFor(t, 15*time.Second, "HAProxy offline service marking "+r.Name+" DOWN", func() bool {
		st, err := h.ServerStates()
		if err == nil && strings.HasPrefix(st["offline"][r.Name], "DOWN") {
			down = time.Since(hupAt)
			return true
		}
		return false
	})
	t.Logf("noloadbalance + SIGHUP on %s: /replica 503 after %v; HAProxy (inter %v, fall %d) marked it DOWN after %v",
		r.Name, answered503.Round(time.Millisecond), haInter, haFall, down.Round(time.Millisecond))
	if answered503 > time.Second {
		t.Errorf("/replica answered 503 only %v after SIGHUP, want within 1 s", answered503)
	}
	if limit := haFall*haInter + time.Second; down > limit {
		t.Errorf("HAProxy marked %s DOWN %v after SIGHUP, want within fall × inter + 1 s = %v", r.Name, down, limit)
	}
	WaitFor(t, 15*time.Second, "the member key carrying noloadbalance", func() bool {
		m, _ := c.EtcdKey(context.Background(), "members/"+r.Name)
		return strings.Contains(m, `"noloadbalance":true`)
	})
	WaitFor(t, 15*time.Second, "postgres on "+r.Name+" reloaded with the pg_hba line added by the reload", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, err := r.Conn(ctx)
		if err != nil {
			return false
		}
		defer conn.Close(context.Background())
		var n int
		// The file holds the line, and postgres re-read its configuration after the SIGHUP.
		err = conn.QueryRow(ctx, `select count(*) from pg_hba_file_rules
 where address = '127.0.0.2' and pg_conf_load_time() > $1`, hupAt).Scan(&n)
		return err == nil && n == 1
	})
	if c.Primary() != p {
		t.Errorf("the primary changed across a tags reload")
	}

	setTag(false, func() { // POST /reload this time: 202 at once, applied as on SIGHUP
		code, text := r.Call(t, http.MethodPost, "/reload", nil)
		want(t, "POST /reload", code, text, http.StatusAccepted, "reload scheduled")
	})
	WaitFor(t, 10*time.Second, r.Name+" /replica 200 again", func() bool { return r.Check("/replica") == 200 })
	h.WaitStates(30*time.Second, "after the tag was removed", expectedView(c, p, p, nil))
}

// TestReloadEtcdHostsKeepsLeaderKey (beyond Patroni): the primary's
// etcd3.hosts is rewritten (the same etcd under another name) and SIGHUP
// sent: the etcd client moves to the new endpoints and the leader key stays
// on the same lease; a restart-only key changed in the same edit is logged as
// needing a restart.
func TestReloadEtcdHostsKeepsLeaderKey(t *testing.T) {
	c, p := bootCluster(t, Fast)
	cli := c.Etcd.Client()
	leaderLease := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, "/itest/"+c.Scope+"/leader")
		if err != nil || len(resp.Kvs) == 0 {
			return 0
		}
		return resp.Kvs[0].Lease
	}
	before := leaderLease()
	if before == 0 {
		t.Fatal("no leader key")
	}
	b, err := os.ReadFile(p.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	hostPort := c.Etcd.HostPort()
	port := hostPort[strings.LastIndex(hostPort, ":")+1:]
	text := strings.Replace(string(b), "hosts: "+hostPort, "hosts: localhost:"+port, 1)
	text = strings.Replace(text, "pgpass: "+p.Dir+"/pgpass", "pgpass: "+p.Dir+"/pgpass2", 1)
	if text == string(b) {
		t.Fatal("config has no etcd3.hosts line to rewrite")
	}
	if err := os.WriteFile(p.ConfigPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	logHas := func(s string) bool {
		out, _ := os.ReadFile(p.LogPath)
		return strings.Contains(string(out), s)
	}
	WaitFor(t, 10*time.Second, "the etcd client on the new endpoints", func() bool {
		return logHas("etcd endpoints changed") && logHas("localhost:"+port)
	})
	WaitFor(t, 10*time.Second, "postgresql.pgpass logged as needing a restart", func() bool {
		return logHas("need a restart of pgnoded") && logHas("postgresql.pgpass")
	})
	time.Sleep(time.Duration(3*Fast.LoopWait) * time.Second) // several renewals on the new endpoints; nothing to wait for
	if after := leaderLease(); after != before {
		t.Errorf("leader key lease %x before the reload, %x after: the key was not kept", before, after)
	}
	if np := c.WaitPrimary(10*time.Second, nil); np != p {
		t.Errorf("primary moved from %s to %s across the reload", p.Name, np.Name)
	}
}
