package ha

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzPatchConfig: any patch of any config key document is merged or
// refused; a refused one (any status but 200) writes nothing, and nothing
// written brings a refused setting the key did not have.
func FuzzPatchConfig(f *testing.F) {
	for _, s := range [][2]string{
		{`{"ttl":30}`, `{"ttl":20}`},
		{`{"ttl":30}`, `{"synchronous_mode":true}`},
		{`{"ttl":30,"standby_cluster":{"host":"x"}}`, `{"standby_cluster":null}`},
		{`{"postgresql":{"parameters":{"a":1}}}`, `{"postgresql":null}`},
		{`{"postgresql":1}`, `{"postgresql":{"parameters":{"a":"b"}}}`},
		{`{}`, `{"synchronous_mode":"on","x":[1,{"y":null}]}`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, base, patch string) {
		var p map[string]any
		if json.Unmarshal([]byte(patch), &p) != nil || p == nil {
			return
		}
		var b map[string]any
		if json.Unmarshal([]byte(base), &b) != nil || b == nil {
			return
		}
		st := &stubStore{view: configView(base, 5), setOK: []bool{true}}
		kind, body := cfgOutcome(refusingNode(st).PatchConfig(context.Background(), p))
		if kind != "done" && len(st.wrote) != 0 {
			t.Fatalf("status %s %s but %d writes", kind, body, len(st.wrote))
		}
		if kind == "bad request" && !strings.Contains(string(body), "pgnoded does not support") {
			t.Fatalf("400 without the reason: %s", body)
		}
		for _, w := range st.wrote {
			var doc map[string]any
			if err := json.Unmarshal(w, &doc); err != nil {
				t.Fatalf("wrote invalid JSON %s", w)
			}
			had := map[string]bool{}
			for _, k := range testRefuser(b) {
				had[k.Key] = true
			}
			for _, k := range testRefuser(doc) {
				if !had[k.Key] {
					t.Fatalf("wrote a refused setting %s: %s", k, w)
				}
			}
		}
	})
}
