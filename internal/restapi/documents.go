package restapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// buildClusterDoc is GET /cluster (Patroni's utils.py cluster_as_json), built from the cached view.
func buildClusterDoc(s *cluster.Snapshot) cluster.Doc {
	v := &s.View
	compat4 := s.Compat == cluster.Compat4
	// 3.0.2 marks every member the sync key lists, whatever synchronous_mode
	// says (utils.py cluster_as_json); 4.x only while the mode is on, and as
	// quorum_standby under synchronous_mode: quorum.
	syncMode := v.Config != nil && v.Config.SynchronousMode && !cluster.IsStandbyCluster(v.Config)
	quorum := compat4 && syncMode && v.Config.SynchronousQuorum
	return cluster.BuildDoc(v, cluster.DocOptions{
		Compat4: compat4,
		Scope:   s.Scope,
		IsSync:  func(name string) bool { return (!compat4 || syncMode) && v.Sync.Lists(name, s.Compat) },
		Quorum:  quorum,
		ScheduledAt: func(at string) string {
			if t, ok := parseISOTime(at); ok {
				return pyfmt.Isoformat(t, 'T')
			}
			return at
		},
	})
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
	b := rd.metricsBody(rd.view(snap.DCSAvailable(s.now())))
	if s.cfg.ExtraMetrics == nil {
		b.write(w, 0)
		return
	}
	writeRaw(w, b.code, ctMetrics, s.cfg.ExtraMetrics(append(make([]byte, 0, len(b.data)+512), b.data...)))
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
