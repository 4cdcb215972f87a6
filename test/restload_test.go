//go:build integration

package test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// A closed-loop HTTP/1.1 load generator for a node's REST API, the same shape
// as internal/restapi's benchListener (50 keep-alive clients, a minimal raw
// reader, the next request sent as soon as the answer is complete) but bounded
// by wall time instead of b.N and able to follow a server that closes the
// connection after each answer (Patroni 3.0.2's API speaks HTTP/1.0): the
// client then dials again, and the dial counts in the next request's latency.
// internal/restapi's generator is unexported in its _test package, hence this one.

const (
	restClients   = 50
	restIOTimeout = 5 * time.Second
)

// restLoadResult is what one restLoad measured.
type restLoadResult struct {
	Lat     []time.Duration // per completed request, dial (when needed) + send + full answer
	Dials   int
	Errors  int
	ErrKind map[string]int // error text (without addresses) -> count
	Codes   map[int]int
	Elapsed time.Duration
}

// restLoadSeconds is the closed-loop duration: $PGNODED_BENCH_REST_SECONDS, default 10.
func restLoadSeconds() time.Duration {
	return time.Duration(envInt("PGNODED_BENCH_REST_SECONDS", 10)) * time.Second
}

// restLoad runs `clients` closed-loop clients sending request to addr for d.
// Only answers completed within d count; a request still in flight at the end
// is cut off (neither an answer nor an error).
func restLoad(ctx context.Context, addr, request string, clients int, d time.Duration) restLoadResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	res := restLoadResult{Codes: map[int]int{}, ErrKind: map[string]int{}}
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := restClientLoop(ctx, addr, []byte(request), end)
			mu.Lock()
			res.Lat = append(res.Lat, r.Lat...)
			res.Dials += r.Dials
			res.Errors += r.Errors
			for k, v := range r.Codes {
				res.Codes[k] += v
			}
			for k, v := range r.ErrKind {
				res.ErrKind[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = min(time.Since(start), d)
	return res
}

// restClientLoop is one client until end: it keeps its connection while the server does.
func restClientLoop(ctx context.Context, addr string, req []byte, end time.Time) restLoadResult {
	r := restLoadResult{Codes: map[int]int{}, ErrKind: map[string]int{}}
	var conn net.Conn
	var br *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	fail := func(err error) {
		if ctx.Err() == nil && time.Now().Before(end) {
			r.Errors++
			r.ErrKind[errKind(err)]++
		}
	}
	dialer := net.Dialer{Timeout: restIOTimeout}
	for ctx.Err() == nil {
		sent := time.Now()
		if conn == nil {
			c, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				fail(err)
				continue
			}
			conn, br = c, bufio.NewReaderSize(c, 16<<10)
			r.Dials++
		}
		deadline := time.Now().Add(restIOTimeout)
		if end.Before(deadline) {
			deadline = end
		}
		_ = conn.SetDeadline(deadline)
		code, keep, err := restRoundTrip(conn, br, req)
		if err != nil {
			conn.Close()
			conn = nil
			fail(err)
			continue
		}
		if done := time.Now(); done.Before(end) {
			r.Lat = append(r.Lat, done.Sub(sent))
			r.Codes[code]++
		}
		if !keep {
			conn.Close()
			conn = nil
		}
	}
	return r
}

// errKind is err's text without the addresses, to group errors.
func errKind(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": " + op.Err.Error()
	}
	return err.Error()
}

// restRoundTrip sends req and reads one whole answer; keep reports whether the
// connection may be reused (HTTP/1.1 without Connection: close). A
// close-delimited body is read to EOF.
func restRoundTrip(conn net.Conn, br *bufio.Reader, req []byte) (code int, keep bool, err error) {
	if _, err := conn.Write(req); err != nil {
		return 0, false, err
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errors.New("bad status line " + strconv.Quote(string(line)))
	}
	if code, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, err
	}
	keep = line[7] == '1'
	length := -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(h) <= 2 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			length, _ = strconv.Atoi(string(v))
		case bytes.EqualFold(k, []byte("Connection")):
			if bytes.EqualFold(v, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(v, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	switch {
	case length > 0:
		_, err = io.CopyN(io.Discard, br, int64(length))
	case length < 0 && !keep:
		_, err = io.Copy(io.Discard, br) // close-delimited (also an empty body)
	}
	return code, keep, err
}

// reportRESTLoad reports what restLoad measured with internal/restapi's metric
// names (req/s, p50_us, p99_us, max_us) plus dials per request and errors.
func reportRESTLoad(b *testing.B, what string, r restLoadResult) {
	if len(r.Lat) == 0 {
		b.Fatalf("%s: no request completed (%d errors)", what, r.Errors)
	}
	lat := slices.Clone(r.Lat)
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) }
	rate := float64(len(lat)) / r.Elapsed.Seconds()
	b.ReportMetric(rate, "req/s")
	b.ReportMetric(pct(0.50), "p50_us")
	b.ReportMetric(pct(0.99), "p99_us")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max_us")
	b.ReportMetric(float64(r.Dials)/float64(len(lat)), "dials/req")
	b.ReportMetric(float64(r.Errors), "errors")
	b.Logf("%s: %d answers in %.1fs = %.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.1f ms; %d dials, %d errors, codes %v",
		what, len(lat), r.Elapsed.Seconds(), rate, pct(0.5)/1e3, pct(0.99)/1e3, float64(lat[len(lat)-1].Microseconds())/1e3,
		r.Dials, r.Errors, r.Codes)
	if len(r.ErrKind) > 0 {
		b.Logf("%s: errors by kind: %v", what, r.ErrKind)
	}
}
