package restapi

import (
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// healthCode decides a health-check status (Patroni's api.py do_GET; the
// health-check endpoints of its docs, rest_api.rst) for
// path (the request path, "/" meaning "/primary") and the raw query string,
// given the snapshot facts and whether this node holds a fresh leader key.
func healthCode(path, rawQuery string, f *facts, isLeader, strictPrimary bool) int {
	if path == "/" {
		path = "/primary"
	}

	lag := int64(math.MaxInt64)
	wantReplState := ""
	if rawQuery != "" {
		if v, ok := firstParam(rawQuery, "lag"); ok {
			if n, ok := parseUnitInt(v, "B"); ok {
				lag = n
			}
		}
		wantReplState, _ = firstParam(rawQuery, "replication_state")
	}
	lagging := f.leaderLSN != 0 && f.leaderLSN-f.replayed > lag

	replicaOK := !f.noLoadBalance && !lagging && f.role == roleReplica && f.running &&
		(wantReplState == "" || wantReplState == f.replState)

	var leaderOK, primaryOK, standbyLeaderOK bool
	switch {
	case !f.dcs && f.paused:
		// DCS unreachable in maintenance mode: trust postgres' role alone.
		primaryOK = f.isPrimaryRole
		standbyLeaderOK = f.role == roleStandbyLeader
		leaderOK = primaryOK || standbyLeaderOK
	case isLeader:
		leaderOK = true
		if f.standbyCluster {
			replicaOK = false
			standbyLeaderOK = f.role == roleReplica || f.role == roleStandbyLeader
		} else {
			primaryOK = !strictPrimary || (f.isPrimaryRole && f.running)
		}
	}

	code := http.StatusServiceUnavailable
	ok := false
	checkTags := true
	switch {
	case strings.Contains(path, "standby_leader") || strings.Contains(path, "standby-leader"):
		ok, checkTags = standbyLeaderOK, false
	case strings.Contains(path, "leader"):
		ok, checkTags = leaderOK, false
	case strings.Contains(path, "master") || strings.Contains(path, "primary") || strings.Contains(path, "read-write"):
		ok, checkTags = primaryOK, false
	case strings.Contains(path, "replica"):
		ok = replicaOK
	case strings.Contains(path, "read-only") && !strings.Contains(path, "sync") &&
		!(f.compat4 && strings.Contains(path, "quorum")):
		ok = primaryOK || standbyLeaderOK || replicaOK
	case strings.Contains(path, "health"):
		ok = f.running
	case f.dcs:
		// 3.0.2 has no /quorum rows: /quorum answers 503 like any unknown
		// path, /read-only-quorum went to the read-only row above.
		switch path {
		case "/sync", "/synchronous":
			ok = f.syncStandby && replicaOK
		case "/quorum":
			ok = f.compat4 && f.quorumStandby && replicaOK
		case "/async", "/asynchronous":
			ok = !f.syncStandby && !f.quorumStandby && replicaOK
		case "/read-only-quorum":
			ok = f.compat4 && (primaryOK || standbyLeaderOK || (f.quorumStandby && replicaOK))
		case "/read-only-sync", "/read-only-synchronous":
			ok = primaryOK || standbyLeaderOK || (f.syncStandby && replicaOK)
		}
	}
	if ok {
		code = http.StatusOK
		if checkTags && rawQuery != "" && !tagsMatch(rawQuery, f.tags) {
			code = http.StatusServiceUnavailable
		}
	}
	return code
}

// healthPath is the path as Patroni sees it: not percent-decoded.
func healthPath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.Path
}

// serveHealth answers a health check; withBody selects GET (status document) versus HEAD/OPTIONS (status only).
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request, withBody bool) {
	snap := s.src.Snapshot()
	rd := s.cache.get(snap)
	if rd == nil {
		if withBody {
			writeRaw(w, http.StatusServiceUnavailable, ctJSON, minimalStatus)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	now := s.now()
	v := rd.view(snap.DCSAvailable(now))
	code := healthCode(healthPath(r), r.URL.RawQuery, &v.facts, snap.IsLeader(now), s.cfg.StrictPrimary)
	if !withBody {
		w.WriteHeader(code)
		return
	}
	v.statusBody().write(w, code)
}

// serveLiveness is GET /liveness: 200 while the HA loop is not stuck (or paused).
func (s *Server) serveLiveness(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(livenessCode(s.src.Snapshot(), s.now()))
}

// livenessCode: 200 when paused, or while the time the next HA cycle was due
// plus ttl (running primary) or 2×ttl (otherwise) is still ahead.
func livenessCode(snap *cluster.Snapshot, now time.Time) int {
	if snap == nil {
		return http.StatusServiceUnavailable
	}
	if snap.Paused {
		return http.StatusOK
	}
	threshold := snap.TTL
	if snap.Role != cluster.RolePrimary || !snap.PG.Running {
		threshold *= 2
	}
	next := snap.NextLoopAt
	if next.IsZero() {
		if snap.LastLoop.IsZero() {
			return http.StatusServiceUnavailable
		}
		next = snap.LastLoop.Add(snap.LoopWait)
	}
	if next.Add(threshold).After(now) {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// serveReadiness is GET /readiness.
func (s *Server) serveReadiness(w http.ResponseWriter, r *http.Request) {
	snap := s.src.Snapshot()
	rd := s.cache.get(snap)
	if rd == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	now := s.now()
	v := rd.view(snap.DCSAvailable(now))
	w.WriteHeader(readinessCode(&v.facts, snap.IsLeader(now), r.URL.RawQuery))
}

// readinessCode: 3.0.2 — leader, or running with a valid DCS view. 4.x (4.1) —
// leader, or running, streaming, with the leader position known (or failsafe
// active) and the apply/write lag within ?lag= (default maximum_lag_on_failover).
func readinessCode(f *facts, isLeader bool, rawQuery string) int {
	if isLeader {
		return http.StatusOK
	}
	if !f.pgStateRunning {
		return http.StatusServiceUnavailable
	}
	if !f.compat4 {
		if f.dcs {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}
	if f.replState != "streaming" {
		return http.StatusServiceUnavailable
	}
	if f.leaderLSN == 0 && !f.dcs {
		if f.failsafeActive {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}
	pos := f.replayed
	maxLag := f.maxLagOnFailover
	if rawQuery != "" {
		if m, _ := firstParam(rawQuery, "mode"); m == "write" {
			pos = f.received
		}
		if v, ok := firstParam(rawQuery, "lag"); ok {
			if n, ok := parseUnitInt(v, "B"); ok {
				maxLag = n
			}
		}
	}
	if f.leaderLSN-pos > maxLag {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}
