//go:build integration

package test

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// promSample is one scrape of a Prometheus text endpoint (etcd's /metrics):
// every sample by its full series name, `name{labels}`.
type promSample struct {
	At     time.Time
	Series map[string]float64
}

// scrapeProm fetches url and parses the text format (comments skipped).
func scrapeProm(url string) (promSample, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return promSample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return promSample{}, fmt.Errorf("scrape %s: %s: %s", url, resp.Status, b)
	}
	s := promSample{At: time.Now(), Series: map[string]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		s.Series[line[:i]] = v
	}
	return s, sc.Err()
}

// Sum adds every series of metric name whose labels contain each of the label
// pairs given (`grpc_type="unary"`).
func (s promSample) Sum(name string, labels ...string) float64 {
	var sum float64
	for k, v := range s.Series {
		n, rest, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
				break
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// buckets returns histogram name's cumulative buckets (le -> count), summed over label sets.
func (s promSample) buckets(name string) map[float64]float64 {
	out := map[float64]float64{}
	for k, v := range s.Series {
		n, rest, _ := strings.Cut(k, "{")
		if n != name+"_bucket" {
			continue
		}
		_, le, ok := strings.Cut(rest, `le="`)
		if !ok {
			continue
		}
		le, _, _ = strings.Cut(le, `"`)
		b := math.Inf(1)
		if le != "+Inf" {
			if f, err := strconv.ParseFloat(le, 64); err == nil {
				b = f
			}
		}
		out[b] += v
	}
	return out
}

// histDelta is a histogram's change between two scrapes: the observation count,
// how many took longer than `over` seconds, and the bucket bound holding the q-quantile.
type histDelta struct {
	Count, Over float64
	Quantile    float64 // upper bound of the bucket holding the quantile (+Inf possible)
}

// merge combines two members' deltas: counts add up, the quantile is the worse.
func (h histDelta) merge(o histDelta) histDelta {
	return histDelta{Count: h.Count + o.Count, Over: h.Over + o.Over, Quantile: max(h.Quantile, o.Quantile)}
}

// histogramDelta compares histogram name between a and b.
func histogramDelta(a, b promSample, name string, over, q float64) histDelta {
	ba, bb := a.buckets(name), b.buckets(name)
	var les []float64
	for le := range bb {
		les = append(les, le)
	}
	sort.Float64s(les)
	var d histDelta
	if len(les) == 0 {
		return d
	}
	d.Count = bb[math.Inf(1)] - ba[math.Inf(1)]
	for _, le := range les {
		if le >= over {
			d.Over = d.Count - (bb[le] - ba[le])
			break
		}
	}
	for _, le := range les {
		if bb[le]-ba[le] >= q*d.Count {
			d.Quantile = le
			break
		}
	}
	return d
}

// fmtSeconds prints a bucket bound as a duration ("+Inf" stays).
func fmtSeconds(s float64) string {
	if math.IsInf(s, 1) {
		return ">max bucket"
	}
	return (time.Duration(s * float64(time.Second))).String()
}

// etcdHealth is what etcd's own metrics say about its starvation between two scrapes.
type etcdHealth struct {
	WALFsync, BackendCommit           histDelta
	LeaderChanges, HeartbeatFailures  float64
	SlowApplies, SlowReadIndexes      float64
	ProposalsFailed, ProposalsPending float64
}

func etcdHealthDelta(a, b promSample) etcdHealth {
	d := func(n string) float64 { return b.Sum(n) - a.Sum(n) }
	return etcdHealth{
		WALFsync:          histogramDelta(a, b, "etcd_disk_wal_fsync_duration_seconds", 0.1, 0.99),
		BackendCommit:     histogramDelta(a, b, "etcd_disk_backend_commit_duration_seconds", 0.1, 0.99),
		LeaderChanges:     d("etcd_server_leader_changes_seen_total"),
		HeartbeatFailures: d("etcd_server_heartbeat_send_failures_total"),
		SlowApplies:       d("etcd_server_slow_apply_total"),
		SlowReadIndexes:   d("etcd_server_slow_read_indexes_total"),
		ProposalsFailed:   d("etcd_server_proposals_failed_total"),
		ProposalsPending:  b.Sum("etcd_server_proposals_pending"),
	}
}

func (h etcdHealth) String() string {
	return fmt.Sprintf("wal fsyncs %.0f (p99 <= %s, %.0f over 100ms), backend commits %.0f (p99 <= %s, %.0f over 100ms), leader changes %.0f, heartbeat send failures %.0f, slow applies %.0f, slow read indexes %.0f, failed proposals %.0f",
		h.WALFsync.Count, fmtSeconds(h.WALFsync.Quantile), h.WALFsync.Over,
		h.BackendCommit.Count, fmtSeconds(h.BackendCommit.Quantile), h.BackendCommit.Over,
		h.LeaderChanges, h.HeartbeatFailures, h.SlowApplies, h.SlowReadIndexes, h.ProposalsFailed)
}
