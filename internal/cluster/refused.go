package cluster

// KeyIssue is a configuration key pgnoded refuses or warns about, with the
// reason ("pgnoded does not support … (what to do)" for a refusal).
type KeyIssue struct {
	Key string // dotted path inside the document, e.g. "standby_cluster"
	Msg string
}

// String renders "key: message".
func (k KeyIssue) String() string { return k.Key + ": " + k.Msg }
