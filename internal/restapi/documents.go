package restapi

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// clusterDoc is GET /cluster (patroni-contract.md §1.4), built from the cached view.
type clusterDoc struct {
	Members             []clusterMember  `json:"members"`
	Scope               string           `json:"scope,omitempty"` // 3.2+
	Pause               bool             `json:"pause,omitempty"`
	ScheduledSwitchover *scheduledSwitch `json:"scheduled_switchover,omitempty"`
}

type clusterMember struct {
	Name                 string                           `json:"name"`
	Role                 string                           `json:"role"`
	State                string                           `json:"state"`
	APIURL               *string                          `json:"api_url"`
	Host                 string                           `json:"host,omitempty"`
	Port                 int                              `json:"port,omitempty"`
	Timeline             int                              `json:"timeline,omitempty"`
	PendingRestart       bool                             `json:"pending_restart,omitempty"`
	PendingRestartReason map[string]cluster.PendingChange `json:"pending_restart_reason,omitempty"`
	ScheduledRestart     map[string]any                   `json:"scheduled_restart,omitempty"`
	Tags                 map[string]any                   `json:"tags,omitempty"`
	Lag                  any                              `json:"lag,omitempty"` // int bytes or "unknown"; absent for the leader
}

type scheduledSwitch struct {
	At   string `json:"at"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

func buildClusterDoc(s *cluster.Snapshot) clusterDoc {
	v := &s.View
	compat4 := s.Compat == cluster.Compat4
	leader := ""
	if v.Leader != nil {
		leader = v.Leader.Name
	}
	var clusterLSN int64
	if v.Status != nil {
		clusterLSN = v.Status.Optime
	}
	syncMembers := map[string]bool{}
	syncMode := v.Config != nil && v.Config.SynchronousMode
	if v.Sync != nil && v.Sync.SyncStandby != nil && (!compat4 || syncMode) {
		for _, n := range strings.Split(*v.Sync.SyncStandby, ",") {
			if n = strings.TrimSpace(n); n != "" {
				syncMembers[n] = true
			}
		}
	}
	standby := v.Config != nil && isStandbyClusterConfig(v.Config.Raw["standby_cluster"])

	doc := clusterDoc{Members: make([]clusterMember, 0, len(v.Members))}
	for name, m := range v.Members {
		if name == "" {
			name = m.Name
		}
		cm := clusterMember{Name: name, State: m.State, Timeline: m.Timeline,
			PendingRestart: m.PendingRestart, ScheduledRestart: m.ScheduledRestart}
		if len(m.Tags) > 0 {
			cm.Tags = m.Tags
		}
		if compat4 {
			cm.PendingRestartReason = m.PendingRestartReason
			if m.ReplicationState != "" {
				cm.State = m.ReplicationState
			}
		}
		if m.APIURL != "" {
			u := m.APIURL
			cm.APIURL = &u
		}
		cm.Host, cm.Port = hostPort(m.ConnURL)
		switch {
		case name == leader && standby:
			cm.Role = "standby_leader"
		case name == leader:
			cm.Role = "leader"
		case syncMembers[name]:
			cm.Role = "sync_standby"
		default:
			cm.Role = "replica"
		}
		if name != leader {
			switch {
			case m.XLogLocation == nil:
				cm.Lag = "unknown"
			case clusterLSN >= *m.XLogLocation:
				cm.Lag = clusterLSN - *m.XLogLocation
			default:
				cm.Lag = int64(0)
			}
		}
		doc.Members = append(doc.Members, cm)
	}
	slices.SortFunc(doc.Members, func(a, b clusterMember) int { return cmp.Compare(a.Name, b.Name) })
	if compat4 {
		doc.Scope = s.Scope
	}
	doc.Pause = v.Config != nil && v.Config.Pause
	if f := v.Failover; f != nil && f.ScheduledAt != "" {
		at := f.ScheduledAt
		if t, ok := parseISOTime(at); ok {
			at = pyDatetime(t, 'T')
		}
		doc.ScheduledSwitchover = &scheduledSwitch{At: at, From: f.Leader, To: f.Member}
	}
	return doc
}

// isStandbyClusterConfig is Patroni's is_standby_cluster: a standby_cluster
// section with host, port or restore_command.
func isStandbyClusterConfig(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, k := range []string{"host", "port", "restore_command"} {
		if pyTruthy(m[k]) {
			return true
		}
	}
	return false
}

// hostPort extracts the host and port (default 5432) of a postgres:// conn_url.
func hostPort(connURL string) (string, int) {
	if connURL == "" {
		return "", 0
	}
	u, err := url.Parse(connURL)
	if err != nil || u.Hostname() == "" {
		return "", 0
	}
	port := 5432
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return strings.ToLower(u.Hostname()), 0
		}
		port = n
	}
	return strings.ToLower(u.Hostname()), port
}

// parseISOTime parses the isoformat timestamps Patroni writes (scheduled_at).
func parseISOTime(s string) (time.Time, bool) {
	t, hasTZ, err := parseTimestamp(s)
	return t, err == nil && hasTZ
}

func (s *Server) serveCluster(w http.ResponseWriter, _ *http.Request) {
	rd := s.cache.get(s.src.Snapshot())
	if rd == nil {
		writeNotReady(w)
		return
	}
	rd.clusterOnce.Do(func() { rd.clusterBody = jsonBody(http.StatusOK, buildClusterDoc(rd.snap)) })
	rd.clusterBody.write(w, 0)
}

func (s *Server) serveHistory(w http.ResponseWriter, _ *http.Request) {
	rd := s.cache.get(s.src.Snapshot())
	if rd == nil {
		writeNotReady(w)
		return
	}
	rd.historyOnce.Do(func() {
		h := rd.snap.View.History
		if h == nil {
			h = []cluster.HistoryEntry{}
		}
		rd.historyBody = jsonBody(http.StatusOK, h)
	})
	rd.historyBody.write(w, 0)
}

func (s *Server) serveConfig(w http.ResponseWriter, _ *http.Request) {
	rd := s.cache.get(s.src.Snapshot())
	if rd == nil {
		writeNotReady(w)
		return
	}
	rd.configOnce.Do(func() {
		raw := rd.snap.View.ConfigRaw
		if len(raw) == 0 || !json.Valid(raw) {
			rd.configBody = newBody(http.StatusBadGateway, ctText, []byte("config key is absent"))
			return
		}
		rd.configBody = newBody(http.StatusOK, ctJSON, raw)
	})
	rd.configBody.write(w, 0)
}

func (s *Server) serveFailsafe(w http.ResponseWriter, _ *http.Request) {
	rd := s.cache.get(s.src.Snapshot())
	if rd == nil {
		writeNotReady(w)
		return
	}
	rd.failsafeOnce.Do(func() {
		fs := rd.snap.View.Failsafe
		if fs == nil {
			rd.failsafeBody = newBody(http.StatusBadGateway, ctText, []byte("failsafe key is absent"))
			return
		}
		rd.failsafeBody = jsonBody(http.StatusOK, fs)
	})
	rd.failsafeBody.write(w, 0)
}

func (s *Server) servePatroni(w http.ResponseWriter, _ *http.Request) {
	snap := s.src.Snapshot()
	rd := s.cache.get(snap)
	if rd == nil {
		writeRaw(w, http.StatusServiceUnavailable, ctJSON, minimalStatus)
		return
	}
	rd.view(snap.DCSAvailable(s.now())).statusBody().write(w, http.StatusOK)
}

func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	snap := s.src.Snapshot()
	rd := s.cache.get(snap)
	if rd == nil {
		writeNotReady(w)
		return
	}
	rd.metricsBody(rd.view(snap.DCSAvailable(s.now()))).write(w, 0)
}

func writeNotReady(w http.ResponseWriter) {
	writeText(w, http.StatusServiceUnavailable, "no cluster state yet")
}

// writeText sends a one-line text reply (Patroni's bare sentences, without a newline).
func writeText(w http.ResponseWriter, code int, text string) {
	writeRaw(w, code, ctText, []byte(text))
}

func writeRaw(w http.ResponseWriter, code int, ctype []string, data []byte) {
	if code < 100 || code > 999 { // a buggy Actions must not crash the handler
		code = http.StatusInternalServerError
	}
	h := w.Header()
	h["Content-Type"] = ctype
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(code)
	_, _ = w.Write(data)
}
