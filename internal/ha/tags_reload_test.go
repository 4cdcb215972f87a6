package ha

import (
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"testing"
)

func TestSetTagsChangesTheSnapshotAtOnce(t *testing.T) {
	n := New(Config{Name: "pg1", Scope: "s", Tags: map[string]any{"noloadbalance": false, "dc": "a"}}, Deps{})
	if tags := n.Snapshot().Tags; tags["noloadbalance"] != nil || tags["dc"] != "a" {
		t.Fatalf("initial tags %v", tags)
	}
	n.SetTags(map[string]any{"noloadbalance": true, "nofailover": "true"})
	tags := n.Snapshot().Tags
	if tags["noloadbalance"] != true || tags["dc"] != nil {
		t.Errorf("snapshot tags after SetTags = %v", tags)
	}
	if pt := plan.ParseTags(n.configTags()); !pt.NoLoadBalance || pt.CanFailover() {
		t.Errorf("decision tags after SetTags = %+v", pt)
	}
}
