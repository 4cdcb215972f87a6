package restapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks through the real listener, as HAProxy and peers use the API:
// 50 concurrent keep-alive HTTP/1.1 clients. The client is a minimal raw
// HTTP/1.1 reader so that the measurement is dominated by the server, not by
// net/http's client. Two modes:
//   - closed-loop: every client sends its next request as soon as the answer
//     arrives (maximum throughput; by Little's law mean latency = 50 / rate);
//   - paced-34k: clients together offer 34,000 req/s on a fixed schedule and the
//     latency is measured from the scheduled send time (no coordinated omission).
// Run: go test -run '^$' -bench . -benchtime 3s ./internal/restapi/

const (
	benchClients = 50
	pacedRate    = 34000 // req/s offered in the paced mode
)

func BenchmarkOptionsPrimary(b *testing.B) {
	benchListener(b, "OPTIONS /primary HTTP/1.1\r\nHost: bench\r\n\r\n", false, benchServer)
}

func BenchmarkGetPatroni(b *testing.B) {
	benchListener(b, "GET /patroni HTTP/1.1\r\nHost: bench\r\n\r\n", true, benchServer)
}

// BenchmarkBaselineNetHTTP is the floor on this machine: a bare net/http
// server with the same timeouts whose handler only writes 200, under the same load.
func BenchmarkBaselineNetHTTP(b *testing.B) {
	benchListener(b, "OPTIONS /primary HTTP/1.1\r\nHost: bench\r\n\r\n", false, bareServer)
}

// benchServer starts the REST API on a fresh lock and DCS view (real clock) and returns its address.
func benchServer(b *testing.B) string {
	snap := primaryLeader()
	snap.LeaderUntil = time.Now().Add(time.Hour)
	snap.View.ReadAt = time.Now()
	srv, _ := newTestServer(b, snap, func(c *Config) { c.Now = time.Now })
	runServer(b, srv)
	return srv.Addr()
}

func bareServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }),
		ReadHeaderTimeout: DefaultReadHeaderTimeout, ReadTimeout: DefaultReadTimeout,
		WriteTimeout: DefaultWriteTimeout, IdleTimeout: DefaultIdleTimeout,
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close(); <-served })
	return ln.Addr().String()
}

func benchListener(b *testing.B, request string, wantBody bool, start func(*testing.B) string) {
	for _, mode := range []struct {
		name     string
		interval time.Duration // per client; 0 = closed loop
	}{
		{"closed-loop", 0},
		{"paced-34k", time.Second * benchClients / pacedRate},
	} {
		b.Run(mode.name, func(b *testing.B) {
			addr := start(b)
			var clientSeq atomic.Int64

			var mu sync.Mutex
			var lat, svcLat []time.Duration
			var firstErr error
			b.SetParallelism((benchClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				c, err := dialRaw(addr, request)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					for pb.Next() {
					}
					return
				}
				defer c.conn.Close()
				mine := make([]time.Duration, 0, 4096)
				svc := make([]time.Duration, 0, 4096)
				// Spread the paced clients over the interval instead of sending in bursts of 50.
				next := time.Now().Add(mode.interval * time.Duration(clientSeq.Add(1)) / benchClients)
				for pb.Next() {
					if mode.interval > 0 {
						next = next.Add(mode.interval)
						if d := time.Until(next); d > 0 {
							time.Sleep(d)
						}
					}
					sent := time.Now()
					code, n, err := c.roundTrip()
					done := time.Now()
					if mode.interval == 0 {
						next = sent
					}
					mine = append(mine, done.Sub(next))
					svc = append(svc, done.Sub(sent))
					if err == nil && (code != http.StatusOK || (wantBody && n == 0)) {
						err = errors.New("unexpected answer " + strconv.Itoa(code))
					}
					if err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						return
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				svcLat = append(svcLat, svc...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if firstErr != nil {
				b.Fatal(firstErr)
			}
			reportLatency(b, lat, svcLat, elapsed)
		})
	}
}

// reportLatency reports throughput and latency percentiles: lat is measured
// from the scheduled send time (equal to the actual one in the closed loop),
// svc from the actual send time (what wrk-style tools report).
func reportLatency(b *testing.B, lat, svc []time.Duration, elapsed time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	slices.Sort(svc)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds())
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(lat, 0.50), "p50_us")
	b.ReportMetric(pct(lat, 0.99), "p99_us")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max_us")
	b.ReportMetric(pct(svc, 0.50), "svc_p50_us")
	b.ReportMetric(pct(svc, 0.99), "svc_p99_us")
	if rss := rssMB(); rss > 0 {
		b.ReportMetric(rss, "rss_MB")
	}
}

// rssMB is the resident set of this process (server and load generator together).
func rssMB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// rawClient is one keep-alive HTTP/1.1 connection sending a fixed request.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
	head bool
}

func dialRaw(addr, request string) (*rawClient, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawClient{conn: conn, br: bufio.NewReaderSize(conn, 16<<10), req: []byte(request),
		head: strings.HasPrefix(request, "HEAD ")}, nil
}

// roundTrip sends the request and reads the answer; it returns the status and body length.
func (c *rawClient) roundTrip() (int, int, error) {
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, 0, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, 0, err
	}
	if len(line) < 12 {
		return 0, 0, errors.New("short status line")
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, 0, err
	}
	length := 0
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, 0, err
		}
		if len(h) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(h, []byte("Content-Length: ")); ok {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if c.head || length == 0 {
		return code, 0, nil
	}
	n, err := io.CopyN(io.Discard, c.br, int64(length))
	return code, int(n), err
}

// In-process benchmarks of the handler alone (no sockets): the work and
// allocations per request that the server adds on top of net/http.

type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }

func benchHandler(b *testing.B, method, target string) {
	srv, _ := newTestServer(b, primaryLeader())
	h := srv.Handler()
	req := httptest.NewRequest(method, target, nil)
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}

func BenchmarkHandlerOptionsPrimary(b *testing.B) { benchHandler(b, http.MethodOptions, "/primary") }
func BenchmarkHandlerGetPatroni(b *testing.B)     { benchHandler(b, http.MethodGet, "/patroni") }
func BenchmarkHandlerGetReplicaLag(b *testing.B) {
	benchHandler(b, http.MethodGet, "/read-only?lag=16MB")
}
func BenchmarkHandlerGetMetrics(b *testing.B) { benchHandler(b, http.MethodGet, "/metrics") }
