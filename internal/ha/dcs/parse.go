package dcs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Keys relative to the base path, as Patroni names them (AbstractDCS's _LEADER,
// _MEMBERS, ... in Patroni's dcs/__init__.py).
const (
	KeyLeader       = "leader"
	KeyMembers      = "members/"
	KeyInitialize   = "initialize"
	KeyConfig       = "config"
	KeyStatus       = "status"
	KeyOptimeLeader = "optime/leader" // legacy, read only when status is absent
	KeyHistory      = "history"
	KeyFailover     = "failover"
	KeySync         = "sync"
	KeyFailsafe     = "failsafe"
)

// memberName returns the member name of a members/<name> key, or "" for
// anything else, including deeper paths, which Patroni ignores.
func memberName(rel string) string {
	name, ok := strings.CutPrefix(rel, KeyMembers)
	if !ok || name == "" || strings.Contains(name, "/") {
		return ""
	}
	return name
}

// buildView turns raw keys into the cluster view, leniently as Patroni reads
// them: unparsable JSON counts as empty, legacy encodings are understood.
func buildView(entries map[string]entry) cluster.View {
	v := cluster.View{Members: map[string]cluster.Member{}}
	for rel, e := range entries {
		switch rel {
		case KeyLeader:
			v.Leader = &cluster.LeaderKey{Name: string(e.value), LeaseID: e.lease, ModRevision: e.modRev}
		case KeyInitialize:
			s := string(e.value)
			v.Initialize = &s
		case KeyConfig:
			v.ConfigRaw = append(json.RawMessage(nil), e.value...)
			v.ConfigRev = e.modRev
			v.Config = parseConfig(e.value)
		case KeyFailover:
			f := parseFailover(e.value)
			f.ModRevision = e.modRev
			v.Failover = &f
		case KeySync:
			s := parseSync(e.value)
			s.ModRevision = e.modRev
			v.Sync = &s
		case KeyHistory:
			v.History = parseHistory(e.value)
		case KeyStatus:
			s := parseStatus(e.value)
			v.Status = &s
		case KeyFailsafe:
			v.Failsafe = parseFailsafe(e.value)
		default:
			if name := memberName(rel); name != "" {
				m := parseMember(e.value)
				m.Name, m.ModRevision, m.LeaseID = name, e.modRev, e.lease
				v.Members[name] = m
			}
		}
	}
	if e, ok := entries[KeyOptimeLeader]; ok && v.Status == nil {
		if n, err := cluster.ParseInt(strings.TrimSpace(string(e.value))); err == nil {
			v.Status = &cluster.StatusKey{Optime: n}
		}
	}
	return v
}

// parseConfig parses the config key; nil unless it is a JSON object. Values of
// the wrong type keep their defaults (ParseDynamicConfig reports them, we stay lenient).
func parseConfig(b []byte) *cluster.DynamicConfig {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		return nil
	}
	c, _ := cluster.FromMap(raw)
	return &c
}

// parseMember reads a member value: JSON, or the legacy
// postgres://...?application_name=<api_url> form. Unparsable means empty.
func parseMember(b []byte) cluster.Member {
	var m cluster.Member
	s := strings.TrimSpace(string(b))
	if strings.HasPrefix(s, "postgres") {
		conn, query, _ := strings.Cut(s, "?")
		m.ConnURL = conn
		if q, err := url.ParseQuery(query); err == nil {
			m.APIURL = q.Get("application_name")
		}
		return m
	}
	if err := json.Unmarshal(b, &m); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return cluster.Member{} // syntax error: empty; a wrong-typed field keeps the rest
		}
	}
	return m
}

// parseFailover reads the failover key: a JSON object, or the legacy
// "leader:candidate" plain string. Valid JSON that is not an object is empty.
func parseFailover(b []byte) cluster.Failover {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return cluster.Failover{}
	}
	var raw any
	if err := json.Unmarshal(b, &raw); err != nil {
		parts := strings.Split(s, ":")
		f := cluster.Failover{Leader: strings.TrimSpace(parts[0])}
		if len(parts) > 1 {
			f.Member = strings.TrimSpace(parts[1])
		}
		return f
	}
	obj, _ := raw.(map[string]any)
	return cluster.Failover{
		Leader:      str(obj["leader"]),
		Member:      str(obj["member"]),
		ScheduledAt: str(obj["scheduled_at"]),
	}
}

// parseSync reads the sync key; unparsable or without leader means empty.
func parseSync(b []byte) cluster.SyncState {
	var obj map[string]any
	_ = json.Unmarshal(b, &obj)
	s := cluster.SyncState{Leader: str(obj["leader"])}
	if q, err := cluster.ParseInt(obj["quorum"]); err == nil {
		n := int(q)
		s.Quorum = &n
	}
	if v, ok := obj["sync_standby"]; ok && v != nil {
		sb := str(v)
		s.SyncStandby = &sb
	}
	return s
}

// parseStatus reads the status key: {"optime":N,"slots":{...}} or a bare integer (legacy).
func parseStatus(b []byte) cluster.StatusKey {
	var raw any
	if err := json.Unmarshal(b, &raw); err != nil {
		return cluster.StatusKey{}
	}
	var st cluster.StatusKey
	switch t := raw.(type) {
	case float64:
		st.Optime = int64(t)
	case map[string]any:
		if n, err := cluster.ParseInt(t["optime"]); err == nil {
			st.Optime = n
		}
		if slots, ok := t["slots"].(map[string]any); ok {
			st.Slots = make(map[string]int64, len(slots))
			for name, v := range slots {
				if n, err := cluster.ParseInt(v); err == nil {
					st.Slots[name] = n
				}
			}
		}
	}
	return st
}

// parseHistory reads the history key, skipping entries that are not arrays.
func parseHistory(b []byte) []cluster.HistoryEntry {
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return nil
	}
	h := make([]cluster.HistoryEntry, 0, len(items))
	for _, it := range items {
		var e cluster.HistoryEntry
		if err := json.Unmarshal(it, &e); err == nil {
			h = append(h, e)
		}
	}
	return h
}

// parseFailsafe reads the failsafe key; nil unless it is a JSON object.
func parseFailsafe(b []byte) map[string]string {
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return nil
	}
	m := make(map[string]string, len(obj))
	for k, v := range obj {
		m[k] = str(v)
	}
	return m
}

// str renders a decoded JSON scalar as a string ("" for null or absent).
func str(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	default:
		return fmt.Sprint(t)
	}
}
