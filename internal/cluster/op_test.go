package cluster

import (
	"errors"
	"fmt"
	"testing"
)

func TestOpErrorKinds(t *testing.T) {
	if len(OpErrorKinds) != len(opErrorKindNames) {
		t.Fatalf("OpErrorKinds lists %d kinds, %d have names", len(OpErrorKinds), len(opErrorKindNames))
	}
	seen := map[string]bool{}
	for _, k := range OpErrorKinds {
		name := k.String()
		if name == "" || seen[name] {
			t.Errorf("kind %d: name %q empty or repeated", int(k), name)
		}
		seen[name] = true
	}
	if got := OpErrorKind(99).String(); got != "OpErrorKind(99)" {
		t.Errorf("unknown kind named %q", got)
	}
}

func TestRefuse(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", Refusef(OpUnavailable, "%s already in progress", "restart"))
	var oe *OpError
	if !errors.As(err, &oe) || oe.Kind != OpUnavailable || oe.Text != "restart already in progress" {
		t.Fatalf("Refusef through a wrap: %+v", oe)
	}
	if e := Refuse(OpConflict, "100% sure"); e.Error() != "100% sure" {
		t.Errorf("Refuse formats its text: %q", e.Error())
	}
	if r := Scheduled("later"); !r.Scheduled || r.Text != "later" || Done("now").Scheduled {
		t.Errorf("results: %+v", r)
	}
}
