package proc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// observeSQL is the one round trip of an observation. Functions that fail on
// the other side of recovery are guarded by CASE (evaluated lazily for volatile calls).
const observeSQL = `SELECT r.rec,
  CASE WHEN r.rec THEN 0 ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0')::bigint END,
  CASE WHEN r.rec THEN 0 ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), '0/0')::bigint END,
  COALESCE(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(), '0/0')::bigint, 0),
  COALESCE(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_replay_lsn(), '0/0')::bigint, 0),
  (EXTRACT(EPOCH FROM pg_catalog.pg_last_xact_replay_timestamp()) * 1000000)::bigint,
  CASE WHEN r.rec THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END,
  CASE WHEN r.rec THEN GREATEST(w.received_tli, (pg_catalog.pg_control_checkpoint()).timeline_id,
                                (pg_catalog.pg_control_recovery()).min_recovery_end_timeline)
       ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  COALESCE(w.status, ''),
  COALESCE(w.received_tli, 0),
  COALESCE(pg_catalog.pg_wal_lsn_diff(w.latest_end_lsn, '0/0')::bigint, 0),
  (EXTRACT(EPOCH FROM pg_catalog.pg_postmaster_start_time()) * 1000000)::bigint,
  pg_catalog.current_setting('server_version_num')::int,
  (SELECT system_identifier::text FROM pg_catalog.pg_control_system()),
  (SELECT pg_catalog.json_object_agg(s.name, pg_catalog.json_build_array(pg_catalog.current_setting(s.name),
      (SELECT f.setting FROM pg_catalog.pg_file_settings f WHERE pg_catalog.lower(f.name) = s.name
       ORDER BY f.seqno DESC LIMIT 1)))::text
     FROM pg_catalog.pg_settings s WHERE s.pending_restart),
  (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('usename', usename, 'application_name', application_name,
      'client_addr', pg_catalog.host(client_addr), 'state', state, 'sync_state', sync_state, 'sync_priority', sync_priority,
      'sent', COALESCE(pg_catalog.pg_wal_lsn_diff(sent_lsn, '0/0')::bigint, 0),
      'flush', COALESCE(pg_catalog.pg_wal_lsn_diff(flush_lsn, '0/0')::bigint, 0),
      'replay', COALESCE(pg_catalog.pg_wal_lsn_diff(replay_lsn, '0/0')::bigint, 0)))::text
     FROM pg_catalog.pg_stat_replication),
  pg_catalog.current_setting('synchronous_standby_names')
FROM (SELECT pg_catalog.pg_is_in_recovery() AS rec) r LEFT JOIN pg_catalog.pg_stat_wal_receiver w ON true`

// replicationJSON is one element of the pg_stat_replication aggregate: the
// row as Patroni publishes it, plus the positions it leaves out.
type replicationJSON struct {
	cluster.ReplicationRow
	Sent   int64 `json:"sent"`
	Flush  int64 `json:"flush"`
	Replay int64 `json:"replay"`
}

// Observe queries the local postgres once (one round trip bounded by ctx). When
// the query fails, Running and State come from the process watcher.
func (p *Postgres) Observe(ctx context.Context) cluster.PGObservation {
	o := cluster.PGObservation{ObservedAt: time.Now()}
	pm := p.currentIfIdle()
	if pm != nil && !pm.exited() {
		o.Running = true
		o.PostmasterPID = pm.pid
		err := p.withConn(ctx, func(ctx context.Context, c *pgconn.PgConn) error { return scanObservation(ctx, c, &o) })
		if err != nil {
			o.Err = err.Error()
		} else {
			o.Ready = true
		}
	}
	p.mu.Lock()
	if pm != nil {
		if o.Ready {
			pm.started = o.PostmasterStartTime
		} else {
			o.PostmasterStartTime = pm.started
		}
	}
	if pm != nil && o.Ready && o.InRecovery {
		if o.Timeline > pm.replayTLI {
			pm.replayTLI = o.Timeline
		}
		o.Timeline = pm.replayTLI
	}
	if o.Ready && p.pm == pm && p.state != cluster.StateStopping && p.state != cluster.StateRestarting {
		p.state = cluster.StateRunning
	}
	o.State = p.state
	var cmdPending map[string]cluster.PendingChange
	if pm != nil {
		cmdPending = pendingCmdline(pm.cmdline, p.wantCmdline)
	}
	p.mu.Unlock()
	for k, v := range cmdPending {
		if o.PendingRestartWhy == nil {
			o.PendingRestartWhy = map[string]cluster.PendingChange{}
		}
		o.PendingRestartWhy[k] = v
		o.PendingRestart = true
	}
	return o
}

func scanObservation(ctx context.Context, c *pgconn.PgConn, o *cluster.PGObservation) error {
	rows, err := queryText(ctx, c, observeSQL, nil)
	if err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 17 {
		return fmt.Errorf("observe: %d rows, want one of 17 columns", len(rows))
	}
	var (
		r                                = textRow(rows[0]).reader()
		cur, flush, recv, replay, latest = r.int(1), r.int(2), r.int(3), r.int(4), r.int(10)
		replayedUS                       = r.nullable(5)
		tl, rtli, version                = r.int(7), r.int(9), r.int(12)
		status                           = r.str(8)
		startUS                          = r.int(11)
		sysid, pending, repl             = r.nullable(13), r.nullable(14), r.nullable(15)
	)
	o.InRecovery, o.ReplayPaused = r.bool(0), r.bool(6)
	o.SyncStandbyNames = r.str(16)
	if r.err != nil {
		return fmt.Errorf("observe: %w", r.err)
	}
	var replayedAt *time.Time
	if replayedUS != nil {
		us, err := strconv.ParseInt(*replayedUS, 10, 64)
		if err != nil {
			return fmt.Errorf("observe: replay timestamp %q: %w", *replayedUS, err)
		}
		t := time.UnixMicro(us)
		replayedAt = &t
	}
	start := time.UnixMicro(startUS)
	o.CurrentLSN, o.FlushLSN = cluster.LSN(cur), cluster.LSN(flush)
	o.ReceivedLSN, o.ReplayedLSN = cluster.LSN(recv), cluster.LSN(replay)
	o.ReplayedAt = replayedAt
	o.Timeline = int(tl)
	o.Streaming = status == "streaming"
	o.ReceiverTLI = int(rtli)
	o.ReceiverLatest = cluster.LSN(latest)
	o.PostmasterStartTime = start
	o.ServerVersion = int(version)
	if sysid != nil {
		o.SystemID = *sysid
	}
	if pending != nil {
		var m map[string][2]*string
		if err := json.Unmarshal([]byte(*pending), &m); err != nil {
			return fmt.Errorf("observe: pending restart: %w", err)
		}
		o.PendingRestart = len(m) > 0
		o.PendingRestartWhy = make(map[string]cluster.PendingChange, len(m))
		for name, v := range m {
			o.PendingRestartWhy[name] = cluster.PendingChange{OldValue: deref(v[0]), NewValue: deref(v[1])}
		}
	}
	if repl != nil {
		var rows []replicationJSON
		if err := json.Unmarshal([]byte(*repl), &rows); err != nil {
			return fmt.Errorf("observe: pg_stat_replication: %w", err)
		}
		for _, r := range rows {
			row := r.ReplicationRow
			row.SentLSN, row.FlushLSN, row.ReplayLSN = cluster.LSN(r.Sent), cluster.LSN(r.Flush), cluster.LSN(r.Replay)
			o.Replication = append(o.Replication, row)
		}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// execSQL runs a statement as the superuser over the local connection. Arguments
// are sent as text ($1, $2, ...): strings, []string (a text[] literal), integers, bools.
// Without arguments the statement goes over the simple protocol, so a string of
// several statements works, as it did with pgx.Conn.Exec.
func (p *Postgres) execSQL(ctx context.Context, sql string, args ...any) error {
	params, err := encodeParams(args)
	if err != nil {
		return err
	}
	return p.withConn(ctx, func(ctx context.Context, c *pgconn.PgConn) error {
		if len(args) == 0 {
			_, err := c.Exec(ctx, sql).ReadAll()
			return err
		}
		_, err := c.ExecParams(ctx, sql, params, nil, nil, nil).Close()
		return err
	})
}

// querySQL runs a query over the local connection and returns every value as
// text (NULL as ""), one slice per row. Arguments as for execSQL.
func (p *Postgres) querySQL(ctx context.Context, sql string, args ...any) ([][]string, error) {
	params, err := encodeParams(args)
	if err != nil {
		return nil, err
	}
	var out [][]string
	err = p.withConn(ctx, func(ctx context.Context, c *pgconn.PgConn) error {
		rows, err := queryText(ctx, c, sql, params)
		for _, r := range rows {
			row := make([]string, len(r))
			for i, v := range r {
				if v != nil {
					row[i] = *v
				}
			}
			out = append(out, row)
		}
		return err
	})
	return out, err
}

// queryText runs sql with text parameters and text results; a NULL is nil.
func queryText(ctx context.Context, c *pgconn.PgConn, sql string, params [][]byte) ([][]*string, error) {
	rr := c.ExecParams(ctx, sql, params, nil, nil, nil)
	var rows [][]*string
	for rr.NextRow() {
		vals := rr.Values()
		row := make([]*string, len(vals))
		for i, v := range vals {
			if v != nil {
				s := string(v)
				row[i] = &s
			}
		}
		rows = append(rows, row)
	}
	_, err := rr.Close()
	return rows, err
}

// textRow reads typed values out of one text-format row, keeping the first error.
type textRow []*string

// rowReader wraps textRow with its first parse error.
type rowReader struct {
	vals textRow
	err  error
}

func (r textRow) reader() *rowReader { return &rowReader{vals: r} }

func (r *rowReader) nullable(i int) *string { return r.vals[i] }

func (r *rowReader) str(i int) string {
	if v := r.vals[i]; v != nil {
		return *v
	}
	return ""
}

func (r *rowReader) int(i int) int64 {
	v := r.vals[i]
	if v == nil {
		if r.err == nil {
			r.err = fmt.Errorf("column %d is NULL", i+1)
		}
		return 0
	}
	n, err := strconv.ParseInt(*v, 10, 64)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("column %d: %w", i+1, err)
	}
	return n
}

func (r *rowReader) bool(i int) bool {
	v := r.vals[i]
	if v == nil || (*v != "t" && *v != "f") {
		if r.err == nil {
			r.err = fmt.Errorf("column %d: not a boolean", i+1)
		}
		return false
	}
	return *v == "t"
}

// encodeParams turns query arguments into text-format parameter values.
func encodeParams(args []any) ([][]byte, error) {
	if len(args) == 0 {
		return nil, nil
	}
	out := make([][]byte, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case nil:
			out[i] = nil
		case string:
			out[i] = []byte(v)
		case []string:
			out[i] = []byte(textArray(v))
		case int:
			out[i] = strconv.AppendInt(nil, int64(v), 10)
		case int64:
			out[i] = strconv.AppendInt(nil, v, 10)
		case bool:
			out[i] = strconv.AppendBool(nil, v)
		default:
			return nil, fmt.Errorf("proc: query argument $%d of type %T is not supported (string, []string, int, int64, bool)", i+1, a)
		}
	}
	return out, nil
}

// textArray is the text[] literal of ss: {"a","b\"c"}.
func textArray(ss []string) string {
	b := []byte{'{'}
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		for j := 0; j < len(s); j++ {
			if s[j] == '"' || s[j] == '\\' {
				b = append(b, '\\')
			}
			b = append(b, s[j])
		}
		b = append(b, '"')
	}
	return string(append(b, '}'))
}

// inRecovery asks pg_is_in_recovery().
func (p *Postgres) inRecovery(ctx context.Context) (bool, error) {
	rows, err := p.querySQL(ctx, "SELECT pg_catalog.pg_is_in_recovery()")
	if err != nil {
		return false, err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return false, errors.New("pg_is_in_recovery: no answer")
	}
	return rows[0][0] == "t", nil
}

// withConn runs fn on the one local connection (pgconn: pgnoded's own queries
// need no type mapping), connecting first if needed. The connection is
// dropped after any error that is not a plain SQL error.
func (p *Postgres) withConn(ctx context.Context, fn func(context.Context, *pgconn.PgConn) error) error {
	select {
	case p.connSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.connSem }()
	if p.conn == nil || p.conn.IsClosed() {
		cc, err := p.connConfig()
		if err != nil {
			return err
		}
		c, err := pgconn.ConnectConfig(ctx, cc)
		if err != nil {
			return fmt.Errorf("connect to local postgres: %w", err)
		}
		p.conn = c
	}
	err := fn(ctx, p.conn)
	var pgErr *pgconn.PgError
	if err != nil && (!errors.As(err, &pgErr) || p.conn.IsClosed()) {
		p.closeConnLocked()
	}
	return err
}

// connConfig is the superuser's connection through the unix socket. Its
// commits are local (synchronous_commit=local, as Patroni's bootstrap and
// citus connections): pgnoded's own writes (roles, slots) must not wait for a
// synchronous standby, least of all in strict mode before any replica can connect.
func (p *Postgres) connConfig() (*pgconn.Config, error) {
	dsn := formatDSN([][2]string{
		{"host", p.cfg.SocketDir}, {"port", strconv.Itoa(p.cfg.Port)}, {"user", p.cfg.Superuser.Username},
		{"dbname", p.cfg.Database}, {"sslmode", "disable"}, {"application_name", "pgnoded"}, {"connect_timeout", "5"},
		{"options", "-c synchronous_commit=local"},
	})
	cc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("local connection config: %w", err)
	}
	cc.Password = p.cfg.Superuser.Password
	return cc, nil
}

// closeConn drops the local connection (before a smart shutdown, which would wait for it).
func (p *Postgres) closeConn() {
	p.connSem <- struct{}{}
	p.closeConnLocked()
	<-p.connSem
}

func (p *Postgres) closeConnLocked() {
	if p.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = p.conn.Close(ctx)
	p.conn = nil
}
