package cluster

import (
	"encoding/json"
	"testing"
)

func TestParseBool(t *testing.T) {
	for _, c := range []struct {
		in   any
		want bool
	}{
		{true, true}, {false, false}, {" ON ", true}, {"Yes", true}, {"t", true}, {"y", true}, {"1", true},
		{"off", false}, {"NO", false}, {"f", false}, {"n", false}, {"0", false}, {"", false},
		{float64(2), true}, {0, false}, {int64(-1), true}, {json.Number("1"), true}, {json.Number("0"), false},
	} {
		got, err := ParseBool(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseBool(%#v) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []any{nil, "maybe", "tru", json.Number("2"), []any{}, map[string]any{}} {
		if _, err := ParseBool(bad); err == nil {
			t.Errorf("ParseBool(%#v) accepted", bad)
		}
	}
}
