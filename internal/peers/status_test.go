package peers

import (
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"testing"
)

// Documents as Patroni 3.0.2 serves them on GET /patroni.
const (
	fullPrimaryDoc = `{"state":"running","postmaster_start_time":"2026-03-01 12:00:00.000+00:00","role":"master",
		"server_version":150008,"xlog":{"location":67419744},"timeline":2,
		"tags":{"failover_priority":"3"},"database_system_identifier":"7301234567890123456",
		"patroni":{"version":"3.0.2","scope":"pg-test"}}`
	fullReplicaDoc = `{"state":"running","role":"replica","server_version":150008,
		"xlog":{"received_location":67419800,"replayed_location":67419744,"replayed_timestamp":null,"paused":false},
		"timeline":2,"replication_state":"streaming","tags":{"nofailover":true},"watchdog_failed":true,
		"patroni":{"version":"3.0.2","scope":"pg-test"}}`
)

func TestParseStatus(t *testing.T) {
	p, err := ParseStatus("pg1", []byte(fullPrimaryDoc))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Reachable || p.Role != "master" || p.WALPosition != 67419744 || p.Timeline != 2 ||
		p.FailoverPriority != 3 || p.NoFailover || p.WatchdogFailed {
		t.Errorf("primary parsed as %+v", p)
	}
	r, err := ParseStatus("pg2", []byte(fullReplicaDoc))
	if err != nil {
		t.Fatal(err)
	}
	if r.Role != "replica" || r.WALPosition != 67419800 || !r.NoFailover || !r.WatchdogFailed || r.FailoverPriority != 0 {
		t.Errorf("replica parsed as %+v", r)
	}
	x, _ := ParseStatus("pg3", []byte(`{"xlog":{"location":5}}`))
	if !plan.IsPrimaryRole(x.Role) {
		t.Errorf("a document with only xlog.location must count as a primary, got role %q", x.Role)
	}
	if s, err := ParseStatus("pg5", []byte(`{"state":"stopped","role":"master","timeline":3}`)); err != nil || s.Reachable {
		t.Errorf("a primary whose postgres is down counts in the race: %+v, %v", s, err)
	}
	if _, err := ParseStatus("pg4", []byte("<html>")); err == nil {
		t.Error("garbage accepted")
	}
}
