package restapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Handlers of the state-changing endpoints (Patroni's api.py do_POST_*,
// do_PATCH_config, do_PUT_config, do_DELETE_*). Access
// has been checked by guard; each handler reads and validates the body as
// Patroni's REST layer does, then hands over to Actions.

// extendDeadline lets a blocking action (a switchover polls for up to
// 2×max(10, loop_wait) s) outlive the server's WriteTimeout.
func (s *Server) extendDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.ActionTimeout))
}

// snapshotOrRefuse returns the current snapshot, or answers 503 when there is none yet.
func (s *Server) snapshotOrRefuse(w http.ResponseWriter) *cluster.Snapshot {
	snap := s.src.Snapshot()
	if snap == nil {
		writeNotReady(w)
	}
	return snap
}

func (s *Server) postSwitchover(w http.ResponseWriter, r *http.Request) {
	s.switchover(w, r, "switchover")
}

func (s *Server) postFailover(w http.ResponseWriter, r *http.Request) {
	s.switchover(w, r, "failover")
}

func (s *Server) switchover(w http.ResponseWriter, r *http.Request, action string) {
	_, body, ok := s.readBody(w, r, false)
	if !ok {
		return
	}
	snap := s.snapshotOrRefuse(w)
	if snap == nil {
		return
	}
	req, action, code, text := validateSwitchover(action, body, snap.Paused, snap.Compat, s.now())
	s.log.Info("received "+action+" request", "leader", req.Leader, "candidate", req.Candidate,
		"scheduled_at", req.ScheduledAt, "remote", r.RemoteAddr, "rejected", text)
	if code != 0 {
		writeText(w, code, text)
		return
	}
	s.extendDeadline(w)
	if action == "failover" {
		code, text = outcomeStatus(s.actions.Failover(r.Context(), req))
	} else {
		code, text = outcomeStatus(s.actions.Switchover(r.Context(), req))
	}
	writeText(w, code, text)
}

func (s *Server) deleteSwitchover(w http.ResponseWriter, r *http.Request) {
	s.log.Info("received delete switchover request", "remote", r.RemoteAddr)
	s.extendDeadline(w)
	code, text := outcomeStatus(s.actions.DeleteSwitchover(r.Context()))
	writeText(w, code, text)
}

func (s *Server) postRestart(w http.ResponseWriter, r *http.Request) {
	_, body, ok := s.readBody(w, r, true)
	if !ok {
		return
	}
	snap := s.snapshotOrRefuse(w)
	if snap == nil {
		return
	}
	req, code, text := validateRestart(body, snap.Paused, snap.Compat, s.now())
	s.log.Info("received restart request", "schedule", req.Schedule, "role", req.Role,
		"postgres_version", req.PostgresVersion, "timeout", req.Timeout,
		"restart_pending", req.RestartPending, "remote", r.RemoteAddr, "rejected", text)
	if code != 0 {
		writeText(w, code, text)
		return
	}
	s.extendDeadline(w)
	code, text = outcomeStatus(s.actions.Restart(r.Context(), req))
	writeText(w, code, text)
}

func (s *Server) deleteRestart(w http.ResponseWriter, r *http.Request) {
	s.log.Info("received delete restart request", "remote", r.RemoteAddr)
	code, text := outcomeStatus(s.actions.DeleteRestart(r.Context()))
	writeText(w, code, text)
}

func (s *Server) postReload(w http.ResponseWriter, r *http.Request) {
	s.log.Info("received reload request", "remote", r.RemoteAddr)
	code, text := outcomeStatus(s.actions.Reload(r.Context()))
	writeText(w, code, text)
}

func (s *Server) postReinitialize(w http.ResponseWriter, r *http.Request) {
	_, body, ok := s.readBody(w, r, true)
	if !ok {
		return
	}
	force, _ := body.get("force")
	fromLeader, _ := body.get("from_leader")
	req := ReinitializeRequest{Force: pyParseBool(force), FromLeader: pyParseBool(fromLeader)}
	s.log.Info("received reinitialize request", "force", req.Force, "from_leader", req.FromLeader, "remote", r.RemoteAddr)
	s.extendDeadline(w)
	code, text := outcomeStatus(s.actions.Reinitialize(r.Context(), req))
	writeText(w, code, text)
}

func (s *Server) patchConfig(w http.ResponseWriter, r *http.Request) {
	s.configChange(w, r, "patch", s.actions.PatchConfig, http.StatusServiceUnavailable)
}

// putConfig answers a failed write with 502, as Patroni's do_PUT_config does.
func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) {
	s.configChange(w, r, "put", s.actions.PutConfig, http.StatusBadGateway)
}

// configChange runs a PATCH or PUT /config: the document written as JSON
// (200), else the refusal as text; storeFailed is the status of a failed DCS write.
func (s *Server) configChange(w http.ResponseWriter, r *http.Request, verb string,
	act func(ctx context.Context, doc map[string]any) ([]byte, error), storeFailed int) {
	raw, _, ok := s.readBody(w, r, false)
	if !ok {
		return
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil { // already validated as an object
		writeText(w, http.StatusBadRequest, "Bad request: "+err.Error())
		return
	}
	s.log.Info("received config "+verb+" request", "keys", len(doc), "remote", r.RemoteAddr)
	s.extendDeadline(w)
	out, err := act(r.Context(), doc)
	if err != nil {
		code, text := errorStatus(err)
		if oe := (*cluster.OpError)(nil); errors.As(err, &oe) && oe.Kind == cluster.OpStoreFailed {
			code = storeFailed
		}
		writeText(w, code, text)
		return
	}
	ctype := ctText
	if json.Valid(out) {
		ctype = ctJSON
	}
	writeRaw(w, http.StatusOK, ctype, out)
}

func (s *Server) postFailsafe(w http.ResponseWriter, r *http.Request) {
	snap := s.snapshotOrRefuse(w)
	if snap == nil {
		return
	}
	if !snap.Config.FailsafeMode {
		writeText(w, http.StatusBadGateway, "failsafe mode is disabled")
		return
	}
	_, body, ok := s.readBody(w, r, false)
	if !ok {
		return
	}
	req, msg := validateFailsafe(body)
	if msg != "" {
		writeText(w, http.StatusBadRequest, "Bad request: "+msg)
		return
	}
	res, err := s.actions.Failsafe(r.Context(), req)
	if err != nil {
		// Patroni's do_POST_failsafe answers 500 with any message but "Accepted".
		_, text := errorStatus(err)
		writeText(w, http.StatusInternalServerError, text)
		return
	}
	// 4.x sends this replica's WAL position back so the primary can advance its slot.
	if lsn := snap.PG.WALPosition(); lsn != 0 && snap.PG.InRecovery {
		w.Header().Set("lsn", strconv.FormatUint(uint64(lsn), 10))
	}
	writeText(w, http.StatusOK, res.Text)
}

// postIgnored accepts Citus/MPP events (a JSON body is still required) and ignores them.
func (s *Server) postIgnored(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := s.readBody(w, r, false); !ok {
		return
	}
	writeText(w, http.StatusOK, "OK")
}

// postSigterm is Patroni's Windows test hook; it does nothing here.
func (s *Server) postSigterm(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusAccepted, "shutdown scheduled")
}
