package cluster

import (
	"slices"
	"testing"
)

func TestNewIssues(t *testing.T) {
	a := KeyIssue{Key: "standby_cluster", Msg: "not supported"}
	b := KeyIssue{Key: "synchronous_mode", Msg: "not supported"}
	for _, c := range []struct {
		before, after []KeyIssue
		want          []string
	}{
		{nil, nil, nil},
		{nil, []KeyIssue{a, b}, []string{a.String(), b.String()}},
		{[]KeyIssue{a}, []KeyIssue{a, b}, []string{b.String()}},
		{[]KeyIssue{a, b}, []KeyIssue{a}, nil},
	} {
		if got := NewIssues(c.before, c.after); !slices.Equal(got, c.want) {
			t.Errorf("NewIssues(%v, %v) = %v, want %v", c.before, c.after, got, c.want)
		}
	}
}
