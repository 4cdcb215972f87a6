package dcs

import (
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// rawKeys reads every key under base with a plain client: value and lease by relative key.
func rawKeys(t *testing.T, c *clientv3.Client, base string) map[string]entry {
	t.Helper()
	resp, err := c.Get(ctxT(t), base+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("raw get: %v", err)
	}
	m := map[string]entry{}
	for _, kv := range resp.Kvs {
		m[string(kv.Key)[len(base)+1:]] = entry{value: kv.Value, modRev: kv.ModRevision, lease: kv.Lease}
	}
	return m
}

func TestKeyLayoutIsPatronis(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	s := startStore(t, e, base, "pg-test-1", 10*time.Second)
	ctx := ctxT(t)

	if ok, err := s.AttemptInitialize(ctx); err != nil || !ok {
		t.Fatalf("AttemptInitialize = %v, %v", ok, err)
	}
	if ok, err := s.AttemptInitialize(ctx); err != nil || ok {
		t.Fatalf("second AttemptInitialize = %v, %v; want false", ok, err)
	}
	if err := s.SetInitialize(ctx, "7364952019402846342"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.SetConfig(ctx, []byte(`{ "ttl": 30, "loop_wait": 10, "postgresql": {"use_pg_rewind": true} }`), 0); err != nil || !ok {
		t.Fatalf("SetConfig = %v, %v", ok, err)
	}
	if ok, err := s.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader = %v, %v", ok, err)
	}
	lsn := int64(67419744)
	m := cluster.Member{ConnURL: "postgres://127.0.0.1:5432/postgres", APIURL: "http://127.0.0.1:8008/patroni",
		State: "running", Role: "master", Version: "3.0.2", XLogLocation: &lsn, Timeline: 1,
		Tags: map[string]any{"clonefrom": true}}
	if err := s.TouchMember(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, cluster.StatusKey{Optime: lsn, Slots: map[string]int64{"pg_test_2": lsn}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHistory(ctx, []cluster.HistoryEntry{{Timeline: 1, LSN: 25165984, Reason: "no recovery target specified",
		Timestamp: "2024-05-01T10:00:00.123456+00:00", NewLeader: "pg-test-1"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFailsafe(ctx, map[string]string{"pg-test-1": "http://127.0.0.1:8008/patroni", "pg-test-2": "http://127.0.0.2:8008/patroni"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.SetFailover(ctx, cluster.Failover{}, 0); err != nil || !ok {
		t.Fatalf("SetFailover = %v, %v", ok, err)
	}

	want := map[string]string{
		"initialize": "7364952019402846342",
		"config":     `{"ttl":30,"loop_wait":10,"postgresql":{"use_pg_rewind":true}}`,
		"leader":     "pg-test-1",
		"members/pg-test-1": `{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni",` +
			`"state":"running","role":"master","version":"3.0.2","xlog_location":67419744,"timeline":1,"tags":{"clonefrom":true}}`,
		"status":   `{"optime":67419744,"slots":{"pg_test_2":67419744}}`,
		"history":  `[[1,25165984,"no recovery target specified","2024-05-01T10:00:00.123456+00:00","pg-test-1"]]`,
		"failsafe": `{"pg-test-1":"http://127.0.0.1:8008/patroni","pg-test-2":"http://127.0.0.2:8008/patroni"}`,
		"failover": `{}`,
	}
	raw := rawKeys(t, e.Client(), base)
	s.mu.Lock()
	lease := s.lease.id
	s.mu.Unlock()
	if lease == 0 {
		t.Fatal("no lease")
	}
	if len(raw) != len(want) {
		t.Errorf("keys = %d, want %d: %v", len(raw), len(want), raw)
	}
	for k, w := range want {
		got, ok := raw[k]
		if !ok {
			t.Errorf("%s missing", k)
			continue
		}
		if string(got.value) != w {
			t.Errorf("%s = %s\nwant    %s", k, got.value, w)
		}
		onLease := k == "leader" || k == "members/pg-test-1"
		if onLease && got.lease != lease {
			t.Errorf("%s lease = %x, want ours %x", k, got.lease, lease)
		}
		if !onLease && got.lease != 0 {
			t.Errorf("%s is on lease %x, want none", k, got.lease)
		}
	}

	// Own writes are in the view at once.
	v := s.View()
	if v.Leader == nil || v.Leader.Name != "pg-test-1" || v.Leader.LeaseID != lease || v.Leader.ModRevision != raw["leader"].modRev {
		t.Errorf("view leader = %+v", v.Leader)
	}
	if v.Config == nil || !v.Config.UsePgRewind || v.ConfigRev != raw["config"].modRev || v.Status == nil || v.Status.Optime != lsn ||
		len(v.History) != 1 || len(v.Failsafe) != 2 || v.Failover == nil || !v.Failover.Empty() ||
		v.Initialize == nil || *v.Initialize != "7364952019402846342" || v.Members["pg-test-1"].APIURL != m.APIURL {
		t.Errorf("view = %+v", v)
	}

	// Unchanged member, status and failsafe are not rewritten.
	if err := s.TouchMember(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, cluster.StatusKey{Optime: lsn, Slots: map[string]int64{"pg_test_2": lsn}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFailsafe(ctx, map[string]string{"pg-test-2": "http://127.0.0.2:8008/patroni", "pg-test-1": "http://127.0.0.1:8008/patroni"}); err != nil {
		t.Fatal(err)
	}
	again := rawKeys(t, e.Client(), base)
	for _, k := range []string{"members/pg-test-1", "status", "failsafe"} {
		if again[k].modRev != raw[k].modRev {
			t.Errorf("%s rewritten though unchanged (rev %d -> %d)", k, raw[k].modRev, again[k].modRev)
		}
	}

	// ReadView (patronictl style) sees the same cluster.
	rv, err := readView(ctx, e.Client(), base)
	if err != nil {
		t.Fatal(err)
	}
	if rv.Leader == nil || rv.Leader.Name != "pg-test-1" || len(rv.Members) != 1 || rv.Config == nil || rv.ConfigRev != v.ConfigRev ||
		rv.Revision < raw["failover"].modRev || rv.ReadAt.IsZero() {
		t.Errorf("ReadView = %+v", rv)
	}

	// SetFailsafe(nil) deletes the key (failsafe_mode turned off); once gone, again is a no-op.
	if err := s.SetFailsafe(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := rawKeys(t, e.Client(), base)["failsafe"]; ok {
		t.Error("failsafe still present after SetFailsafe(nil)")
	}
	waitFor(t, 10*time.Second, "failsafe deletion seen", func() bool { return s.View().Failsafe == nil })
	if err := s.SetFailsafe(ctx, nil); err != nil {
		t.Errorf("SetFailsafe(nil) without a key = %v", err)
	}

	// CancelInitialize deletes the key; ReleaseLeader drops the leader key.
	if err := s.CancelInitialize(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLeader(ctx); err != nil {
		t.Fatal(err)
	}
	after := rawKeys(t, e.Client(), base)
	if _, ok := after["initialize"]; ok {
		t.Error("initialize still present after CancelInitialize")
	}
	if _, ok := after["leader"]; ok {
		t.Error("leader still present after ReleaseLeader")
	}
	if v := s.View(); v.Leader != nil || v.Initialize != nil {
		t.Errorf("view after release: leader %+v initialize %v", v.Leader, v.Initialize)
	}
	// Leader-guarded writes now fail with ErrNotLeader.
	if err := s.SetStatus(ctx, cluster.StatusKey{Optime: lsn + 1}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("SetStatus without the leader key = %v, want ErrNotLeader", err)
	}
}

func TestConfigAndFailoverCAS(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	a := startStore(t, e, base, "pg1", 10*time.Second)
	b := startStore(t, e, base, "pg2", 10*time.Second)
	ctx := ctxT(t)

	if ok, err := a.SetConfig(ctx, []byte(`{"ttl":30}`), 0); err != nil || !ok {
		t.Fatalf("create config = %v, %v", ok, err)
	}
	if ok, err := b.SetConfig(ctx, []byte(`{"ttl":40}`), 0); err != nil || ok {
		t.Fatalf("create-only config over an existing key = %v, %v; want false", ok, err)
	}
	rev := a.View().ConfigRev
	waitFor(t, 5*time.Second, "b sees config", func() bool { return b.View().ConfigRev == rev })
	if ok, err := b.SetConfig(ctx, []byte(`{"ttl":20}`), rev); err != nil || !ok {
		t.Fatalf("CAS config = %v, %v", ok, err)
	}
	if ok, err := a.SetConfig(ctx, []byte(`{"ttl":25}`), rev); err != nil || ok {
		t.Fatalf("stale CAS config = %v, %v; want false", ok, err)
	}
	// The failed CAS told a about b's write.
	if c := a.View().Config; c == nil || c.TTL != 20 {
		t.Errorf("a's config after failed CAS = %+v", c)
	}
	if _, err := a.SetConfig(ctx, []byte(`{oops`), 0); err == nil {
		t.Error("SetConfig accepted invalid JSON")
	}

	// Failover: plain put, CAS on its revision, cleared with {}; legacy values parse.
	if _, err := e.Client().Put(ctx, base+"/failover", "pg1:pg2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "legacy failover in view", func() bool {
		f := a.View().Failover
		return f != nil && f.Leader == "pg1" && f.Member == "pg2"
	})
	frev := a.View().Failover.ModRevision
	if ok, err := a.SetFailover(ctx, cluster.Failover{}, frev-1); err != nil || ok {
		t.Fatalf("stale failover CAS = %v, %v; want false", ok, err)
	}
	if ok, err := a.SetFailover(ctx, cluster.Failover{}, frev); err != nil || !ok {
		t.Fatalf("failover clear = %v, %v", ok, err)
	}
	if got := string(rawKeys(t, e.Client(), base)["failover"].value); got != `{}` {
		t.Errorf("cleared failover = %s", got)
	}
	if ok, err := b.SetFailover(ctx, cluster.Failover{Leader: "pg1", Member: "pg2", ScheduledAt: "2030-01-01T00:00:00+00:00"}, 0); err != nil || !ok {
		t.Fatalf("failover put = %v, %v", ok, err)
	}
	want := `{"leader":"pg1","member":"pg2","scheduled_at":"2030-01-01T00:00:00+00:00"}`
	if got := string(rawKeys(t, e.Client(), base)["failover"].value); got != want {
		t.Errorf("failover = %s, want %s", got, want)
	}
}
