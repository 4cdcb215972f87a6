package cluster

// KeyIssue is a configuration key pgnoded refuses or warns about, with the
// reason ("pgnoded does not support … (what to do)" for a refusal).
type KeyIssue struct {
	Key string // dotted path inside the document, e.g. "standby_cluster"
	Msg string
}

// String renders "key: message".
func (k KeyIssue) String() string { return k.Key + ": " + k.Msg }

// NewIssues are the issues of after ("key: message") that before does not
// have, in after's order: what an edit of the config key brings. A refused
// setting already in the key does not block other edits, and removing one is
// always accepted.
func NewIssues(before, after []KeyIssue) []string {
	had := make(map[string]bool, len(before))
	for _, k := range before {
		had[k.String()] = true
	}
	var out []string
	for _, k := range after {
		if !had[k.String()] {
			out = append(out, k.String())
		}
	}
	return out
}
