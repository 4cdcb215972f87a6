package ha

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// PeerTimeout is how long one peer may take to answer during a leader race (Patroni: 2 s, no retry).
const PeerTimeout = 2 * time.Second

// maxPeerDoc caps the status document read from a peer.
const maxPeerDoc = 1 << 20

// HTTPPeers implements Peers with GET <api_url> (the member's /patroni document).
type HTTPPeers struct {
	client  *http.Client
	timeout time.Duration
}

// NewHTTPPeers returns a Peers using client (nil: a plain http.Client; pass one
// with a TLS config when the REST API uses https with a private CA).
func NewHTTPPeers(client *http.Client) *HTTPPeers {
	if client == nil {
		client = &http.Client{}
	}
	return &HTTPPeers{client: client, timeout: PeerTimeout}
}

// Status asks every member in parallel, each bounded by PeerTimeout, and
// returns one PeerStatus per member in the same order (unreachable on any error).
func (p *HTTPPeers) Status(ctx context.Context, members []cluster.Member) []PeerStatus {
	out := make([]PeerStatus, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = p.one(ctx, m)
		}()
	}
	wg.Wait()
	return out
}

func (p *HTTPPeers) one(ctx context.Context, m cluster.Member) PeerStatus {
	st := PeerStatus{Name: m.Name}
	if m.APIURL == "" {
		return st
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.APIURL, nil)
	if err != nil {
		return st
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerDoc))
	if err != nil {
		return st
	}
	if parsed, err := ParsePeerStatus(m.Name, body); err == nil {
		return parsed
	}
	return st
}

// peerDoc is the part of Patroni's /patroni document the leader race reads.
type peerDoc struct {
	Role     string `json:"role"`
	Timeline int    `json:"timeline"`
	XLog     *struct {
		Location *int64 `json:"location"`
		Received *int64 `json:"received_location"`
		Replayed *int64 `json:"replayed_location"`
	} `json:"xlog"`
	Tags           map[string]any `json:"tags"`
	WatchdogFailed bool           `json:"watchdog_failed"`
}

// ParsePeerStatus reads a /patroni document (Patroni's field names): a primary
// reports xlog.location, a replica received/replayed_location; a node that
// reports only xlog.location counts as a primary whatever its role says. A
// document without xlog (postgres not answering) tells nothing about the
// node's data: like Patroni, the race counts it as unreachable, so an old
// primary whose postgres is down never holds a failover back by its role.
func ParsePeerStatus(name string, body []byte) (PeerStatus, error) {
	var d peerDoc
	if err := json.Unmarshal(body, &d); err != nil {
		return PeerStatus{Name: name}, fmt.Errorf("peer %s: bad status document: %w", name, err)
	}
	if d.XLog == nil {
		return PeerStatus{Name: name, Role: d.Role}, nil
	}
	tags := ParseTags(d.Tags)
	st := PeerStatus{Name: name, Reachable: true, Role: d.Role, Timeline: d.Timeline,
		NoFailover: !tags.CanFailover(), FailoverPriority: tags.FailoverPriority, WatchdogFailed: d.WatchdogFailed}
	pos := func(p *int64) cluster.LSN {
		if p == nil || *p < 0 {
			return 0
		}
		return cluster.LSN(*p)
	}
	if d.XLog.Received != nil || d.XLog.Replayed != nil {
		st.WALPosition = max(pos(d.XLog.Received), pos(d.XLog.Replayed))
	} else {
		st.WALPosition = pos(d.XLog.Location)
		if st.WALPosition > 0 && !isPrimaryRole(st.Role) {
			st.Role = "primary"
		}
	}
	return st, nil
}
