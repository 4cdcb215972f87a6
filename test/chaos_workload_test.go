//go:build integration

package test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Workload rates: how often each component looks or writes.
const (
	chaosPollEvery   = 20 * time.Millisecond  // pg_is_in_recovery() per node
	chaosRESTEvery   = 100 * time.Millisecond // OPTIONS /primary per node
	chaosLeaderEvery = 100 * time.Millisecond // the leader key
	chaosProbeEvery  = 100 * time.Millisecond // an insert straight into each node
	chaosWriteEvery  = 10 * time.Millisecond  // pause between two inserts of a writer
	chaosOpTimeout   = 400 * time.Millisecond // one poll, REST check or connect
	chaosTable       = "chaos_writes"
)

// Id ranges keep every writer's ids unique.
const (
	idsRouted = 0
	idsVIP    = 1 << 40
	idsProbe  = 2 << 40 // + node index << 40
)

// ChaosWorkload is the failure suite's client side on a namespace cluster:
//   - a writer inserting unique ids through whichever node answers /primary
//     (it keeps its connection until it breaks, as a pooled client does), and
//     one through the VIP when the cluster has it;
//   - a probe per node inserting straight into that node every 100 ms (a
//     client pinned to a node: any acknowledgement is proof the node was writable);
//   - a poller reading every node's pg_is_in_recovery() every 20 ms and
//     OPTIONS /primary every 100 ms, and the leader key every 100 ms.
//
// Every acknowledged insert is recorded with the node that committed it. All
// traffic is dialled from the topology's client namespace.
type ChaosWorkload struct {
	c      *Cluster
	rec    *recorder
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
	hc     []*http.Client
	stop   sync.Once

	mu       sync.Mutex
	restLast map[string]observation // latest REST sample per node
	lastAck  map[string]time.Time   // latest ack per source
	lastSent map[string]time.Time   // send time of that ack's insert
}

// StartChaosWorkload creates the table on primary p and starts every component.
func StartChaosWorkload(t testing.TB, c *Cluster, p *Node) *ChaosWorkload {
	t.Helper()
	ctx := context.Background()
	if err := createWritesTable(ctx, p.Name, p.Conn, chaosTable); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &ChaosWorkload{c: c, rec: &recorder{}, start: time.Now(), cancel: cancel,
		restLast: map[string]observation{}, lastAck: map[string]time.Time{},
		lastSent: map[string]time.Time{}}
	etcd := c.Topo.EtcdClient()
	w.spawn(func() { w.leaderPoller(wctx, etcd) })
	for i, n := range c.Nodes {
		hc := c.Topo.Client.HTTPClient(chaosOpTimeout)
		w.hc = append(w.hc, hc)
		w.spawn(func() { w.restPoller(wctx, n, hc) })
		w.spawn(func() { w.sqlPoller(wctx, n) })
		w.spawn(func() { w.probe(wctx, n, int64(idsProbe+i<<40)) })
	}
	w.spawn(func() { w.writer(wctx, "writer", idsRouted, w.routedTarget) })
	if c.Opts.VIP {
		vip := c.Topo.VIP().Addr().String()
		w.spawn(func() { w.writer(wctx, "vip", idsVIP, func() string { return vip }) })
	}
	t.Cleanup(w.Stop)
	return w
}

func (w *ChaosWorkload) spawn(fn func()) {
	w.wg.Add(1)
	go func() { defer w.wg.Done(); fn() }()
}

// Stop ends every component (idempotent).
func (w *ChaosWorkload) Stop() {
	w.stop.Do(func() {
		w.cancel()
		w.wg.Wait()
		for _, hc := range w.hc {
			hc.CloseIdleConnections()
		}
	})
}

// LastAck is the arrival of the latest acknowledgement of source ("writer", "vip", "probe").
func (w *ChaosWorkload) LastAck(source string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastAck[source]
}

// WaitWrites waits until the routed writer has an acknowledgement of an
// insert sent after `after` (one in flight at a fault may be answered just
// after it) and returns its arrival.
func (w *ChaosWorkload) WaitWrites(t testing.TB, timeout time.Duration, after time.Time) time.Time {
	t.Helper()
	var at time.Time
	WaitFor(t, timeout, "writes through /primary after "+after.Format("15:04:05.000"), func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		at = w.lastAck["writer"]
		return w.lastSent["writer"].After(after)
	})
	return at
}

// routedTarget is the address of the node whose latest OPTIONS /primary answered 200 ("" if none).
func (w *ChaosWorkload) routedTarget() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var best observation
	for _, o := range w.restLast {
		if o.State == obsWritable && o.Recv.After(best.Recv) {
			best = o
		}
	}
	if best.Node == "" {
		return ""
	}
	for _, n := range w.c.Nodes {
		if n.Name == best.Node {
			return n.NS.IP.String()
		}
	}
	return ""
}

// writer is a Writer (writer_test.go) inserting ids base+1, base+2, ...
// through the host target() names, keeping its connection until an error.
func (w *ChaosWorkload) writer(ctx context.Context, source string, base int64, target func() string) {
	newWriter(writerOptions{Table: chaosTable, FirstID: base,
		Target: func() connectFunc {
			host := target()
			if host == "" {
				return nil
			}
			return func(ctx context.Context) (*pgx.Conn, error) { return w.c.ConnTo(ctx, host, time.Second) }
		},
		Insert: func(ctx context.Context, conn *pgx.Conn, id int64) error { return w.insert(ctx, conn, source, id) },
		Pause:  chaosWriteEvery,
		Retry:  20 * time.Millisecond,
		// /primary may still name the node that just failed
		AfterError: 20 * time.Millisecond,
	}).run(ctx)
}

// probe inserts straight into n every chaosProbeEvery.
func (w *ChaosWorkload) probe(ctx context.Context, n *Node, base int64) {
	var conn *pgx.Conn
	defer func() { closeConn(conn) }()
	id := base
	everyTick(ctx, chaosProbeEvery, func() {
		if conn == nil {
			if conn, _ = w.c.ConnTo(ctx, n.NS.IP.String(), chaosOpTimeout); conn == nil {
				return
			}
		}
		id++
		if err := w.insert(ctx, conn, "probe", id); err != nil {
			closeConn(conn)
			conn = nil
		}
	})
}

// insert commits one row and records the outcome: an ack (and a writable
// observation of the node that committed it), or a read-only observation.
func (w *ChaosWorkload) insert(ctx context.Context, conn *pgx.Conn, source string, id int64) error {
	node := w.nodeOfConn(conn)
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	sent := time.Now()
	var dataDir string
	err := conn.QueryRow(qctx, "insert into "+chaosTable+"(id) values ($1) returning current_setting('data_directory')", id).Scan(&dataDir)
	recv := time.Now()
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "25006" && node != "" { // read_only_sql_transaction
			w.rec.observeSQL(observation{Node: node, Sent: sent, Recv: recv, State: obsReadOnly, Source: source})
		}
		return err
	}
	if n := w.nodeOfDir(dataDir); n != "" {
		node = n
	}
	w.rec.ack(ack{ID: id, Node: node, Sent: sent, Recv: recv, Source: source})
	w.rec.observeSQL(observation{Node: node, Sent: sent, Recv: recv, State: obsWritable, Source: source})
	w.mu.Lock()
	w.lastAck[source], w.lastSent[source] = recv, sent
	w.mu.Unlock()
	return nil
}

// nodeOfConn names the node a connection was opened to ("" for the VIP).
func (w *ChaosWorkload) nodeOfConn(conn *pgx.Conn) string {
	host := conn.Config().Host
	for _, n := range w.c.Nodes {
		if n.NS.IP.String() == host {
			return n.Name
		}
	}
	return ""
}

func (w *ChaosWorkload) nodeOfDir(dir string) string {
	for _, n := range w.c.Nodes {
		if filepath.Join(n.Dir, "data") == dir {
			return n.Name
		}
	}
	return ""
}

// sqlPoller samples pg_is_in_recovery() on n over a kept connection.
func (w *ChaosWorkload) sqlPoller(ctx context.Context, n *Node) {
	var conn *pgx.Conn
	defer func() { closeConn(conn) }()
	everyTick(ctx, chaosPollEvery, func() {
		if conn == nil {
			if conn, _ = w.c.ConnTo(ctx, n.NS.IP.String(), chaosOpTimeout); conn == nil {
				now := time.Now()
				w.rec.observeSQL(observation{Node: n.Name, Sent: now, Recv: now, State: obsUnknown, Source: "poll"})
				return
			}
		}
		qctx, cancel := context.WithTimeout(ctx, chaosOpTimeout)
		sent := time.Now()
		var rec bool
		err := conn.QueryRow(qctx, "select pg_is_in_recovery()").Scan(&rec)
		cancel()
		o := observation{Node: n.Name, Sent: sent, Recv: time.Now(), Source: "poll"}
		switch {
		case err != nil:
			closeConn(conn)
			conn = nil
		case rec:
			o.State = obsReadOnly
		default:
			o.State = obsWritable
		}
		if ctx.Err() == nil {
			w.rec.observeSQL(o)
		}
	})
}

// restPoller sends OPTIONS /primary to n: 200 is writable, another answer read-only.
func (w *ChaosWorkload) restPoller(ctx context.Context, n *Node, hc *http.Client) {
	everyTick(ctx, chaosRESTEvery, func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodOptions, n.url("/primary"), nil)
		o := observation{Node: n.Name, Sent: time.Now(), Source: "rest"}
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			o.State = obsReadOnly
			if resp.StatusCode == http.StatusOK {
				o.State = obsWritable
			}
		}
		o.Recv = time.Now()
		if ctx.Err() != nil {
			return
		}
		w.rec.observeREST(o)
		w.mu.Lock()
		w.restLast[n.Name] = o
		w.mu.Unlock()
	})
}

// leaderPoller reads the leader key.
func (w *ChaosWorkload) leaderPoller(ctx context.Context, cli *clientv3.Client) {
	key := "/itest/" + w.c.Scope + "/leader"
	everyTick(ctx, chaosLeaderEvery, func() {
		gctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		resp, err := cli.Get(gctx, key)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s := leaderSample{At: time.Now(), OK: err == nil}
		if err == nil && len(resp.Kvs) > 0 {
			s.Value = string(resp.Kvs[0].Value)
		}
		w.rec.leader(s)
	})
}

// LostOn stops the workload and returns the acknowledged ids missing on node p,
// and how many were acknowledged in all.
func (w *ChaosWorkload) LostOn(ctx context.Context, p *Node) (lost []ack, acked int, err error) {
	w.Stop()
	present, err := presentIDs(ctx, p.Name, p.Conn, chaosTable)
	if err != nil {
		return nil, 0, err
	}
	_, _, acks, _ := w.rec.snapshot()
	for _, a := range acks {
		if !present[a.ID] {
			lost = append(lost, a)
		}
	}
	return lost, len(acks), nil
}
