package shlex

import (
	"reflect"
	"testing"
)

// The expected vectors are what Python 3's shlex.split returns for the same input.
func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "", want: nil},
		{in: "  /pg/bin/pg-failover-callback  ", want: []string{"/pg/bin/pg-failover-callback"}},
		{in: "/bin/sh -c 'echo $1 >> /tmp/x' cb", want: []string{"/bin/sh", "-c", "echo $1 >> /tmp/x", "cb"}},
		{in: `a "b c" d`, want: []string{"a", "b c", "d"}},
		{in: `a "b \"q\" \\ \n" d`, want: []string{"a", `b "q" \ \n`, "d"}},
		{in: `a\ b c`, want: []string{"a b", "c"}},
		{in: `x''y ''`, want: []string{"xy", ""}},
		{in: `'it'"'"'s'`, want: []string{"it's"}},
		{in: "tab\tsep\nnl", want: []string{"tab", "sep", "nl"}},
		{in: `'open`, err: true},
		{in: `"open`, err: true},
		{in: `trailing\`, err: true},
	} {
		got, err := Split(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("Split(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Split(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
