package cluster

import (
	"fmt"
	"strings"
)

// SlotName turns a member name into its physical replication slot name the way
// Patroni does (slot_name_from_member_name in Patroni's dcs/__init__.py):
// lowercase; '-' and '.' become '_'; any other character outside [a-z0-9_]
// becomes 'u' plus its code point as at least four decimal digits; the result
// is cut to 63 bytes.
func SlotName(member string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(member) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case r == '-', r == '.':
			b.WriteByte('_')
		default:
			fmt.Fprintf(&b, "u%04d", r)
		}
	}
	s := b.String()
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// ReplicationSlot is a row of pg_replication_slots as the HA loop reads it.
type ReplicationSlot struct {
	Name   string
	Type   string // "physical" or "logical"
	Active bool
}

// LoginRole is a login role pgnoded keeps after bootstrap (the replication and rewind users).
type LoginRole struct {
	Name        string
	Password    string // "" leaves the password unset (or as it is)
	Replication bool   // REPLICATION LOGIN; else LOGIN only
}
