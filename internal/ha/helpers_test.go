package ha

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

func TestConnInfo(t *testing.T) {
	cred := Credential{Username: "replicator", Password: "p"}
	ci, err := connInfo("postgres://10.0.0.2:5433/app", cred)
	if err != nil {
		t.Fatal(err)
	}
	want := cluster.ConnInfo{Host: "10.0.0.2", Port: 5433, User: "replicator", Password: "p", DBName: "app"}
	if ci != want {
		t.Errorf("got %+v, want %+v", ci, want)
	}
	ci, err = connInfo("postgres://[::1]/postgres", cred)
	if err != nil || ci.Host != "::1" || ci.Port != 5432 {
		t.Errorf("IPv6 without port: %+v %v", ci, err)
	}
	for _, bad := range []string{"http://x/patroni", "postgres://:5432/x", "postgres://h:port/x", "::"} {
		if _, err := connInfo(bad, cred); err == nil {
			t.Errorf("connInfo(%q) accepted", bad)
		}
	}
}

func TestViewDigestIgnoresTheLeadersOwnStatus(t *testing.T) {
	v := cluster.View{Leader: &cluster.LeaderKey{Name: "pg1"}, Status: &cluster.StatusKey{Optime: 1}, ReadAt: t0}
	a := plan.ViewDigest(v, "pg1", t0, 30e9)
	v.Status = &cluster.StatusKey{Optime: 2}
	if plan.ViewDigest(v, "pg1", t0, 30e9) != a {
		t.Error("the leader's digest changed with status")
	}
	if plan.ViewDigest(v, "pg2", t0, 30e9) == plan.ViewDigest(cluster.View{Leader: v.Leader, Status: &cluster.StatusKey{Optime: 1}, ReadAt: t0}, "pg2", t0, 30e9) {
		t.Error("a replica's digest must change with status")
	}
	v.Leader = &cluster.LeaderKey{Name: "pg2"}
	if plan.ViewDigest(v, "pg1", t0, 30e9) == a {
		t.Error("the digest must change with the leader")
	}
}

func TestNewAndRunValidation(t *testing.T) {
	n := New(Config{Name: "pg1", Scope: "s"}, Deps{})
	if s := n.Snapshot(); s == nil || s.Name != "pg1" || s.Compat != cluster.Compat302 || s.TTL != 30e9 {
		t.Fatalf("initial snapshot %+v", s)
	}
	n.Wake()
	n.Wake() // never blocks
	if err := n.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Postgres and Store are required") {
		t.Fatalf("Run without deps: %v", err)
	}
	w := newWorld(t, "pg1")
	sn := w.nodes["pg1"]
	sn.store = newFakeStore(w, "pg1")
	n = New(Config{Name: "pg1", Scope: "s"}, Deps{Postgres: sn.pg, Store: sn.store})
	if err := n.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Fence is required") {
		t.Fatalf("Run without a fence: %v", err)
	}
	if err := n.Shutdown(context.Background(), false); err != nil {
		t.Fatalf("Shutdown before Run: %v", err)
	}
	if err := n.Run(context.Background()); err == nil {
		t.Fatal("Run after Shutdown must fail")
	}
}

func TestBootstrapConfigJSONFillsPatroniDefaults(t *testing.T) {
	n := newLoop(Config{Name: "pg1", Scope: "s", BootstrapDCS: map[string]any{"ttl": 20, "failsafe_mode": true}}, Deps{})
	c, err := cluster.ParseDynamicConfig(n.bootstrapConfigJSON())
	if err != nil {
		t.Fatal(err)
	}
	if c.TTL != 20 || c.LoopWait != 10 || c.RetryTimeout != 10 || !c.FailsafeMode || c.MaximumLagOnFailover != 1048576 {
		t.Errorf("config %+v", c)
	}
}

// opOutcome is an operation's answer as the tests compare it: "done",
// "scheduled" or the error's kind (cluster.OpErrorKind.String()), and the text.
func opOutcome(res cluster.OpResult, err error) (kind, text string) {
	var oe *cluster.OpError
	switch {
	case err == nil && res.Scheduled:
		return "scheduled", res.Text
	case err == nil:
		return "done", res.Text
	case errors.As(err, &oe):
		return oe.Kind.String(), oe.Text
	}
	return "untyped error", err.Error()
}

// cfgOutcome is PatchConfig's or PutConfig's answer: "done" and the document, or the error's kind and text.
func cfgOutcome(doc []byte, err error) (kind string, body []byte) {
	if err == nil {
		return "done", doc
	}
	kind, text := opOutcome(cluster.OpResult{}, err)
	return kind, []byte(text)
}

// loopOf is the loop of a Node that is not running (tests drive its methods directly).
func loopOf(n *Node) *loop {
	l := <-n.idle
	n.idle <- l
	return l
}

// newLoop is New's loop, for tests that drive the loop's methods directly.
func newLoop(cfg Config, deps Deps) *loop { return loopOf(New(cfg, deps)) }

// faceOf is a public face over l's shared parts, for tests that mix the
// loop's methods with Node's (it has no loop of its own: never Run it).
func faceOf(l *loop) *Node { return &Node{shared: l.shared, idle: make(chan *loop, 1)} }
