package ha

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

var _ FailsafeAsker = (*HTTPPeers)(nil)

// failsafeBody is the POST /failsafe document (Patroni's field names).
type failsafeBody struct {
	Name    string           `json:"name"`
	ConnURL string           `json:"conn_url"`
	APIURL  string           `json:"api_url"`
	Slots   map[string]int64 `json:"slots,omitempty"`
}

// AskFailsafe sends POST <base of api_url>/failsafe to every target in
// parallel, each attempt bounded by timeout, retried once after a transport
// error or an unexpected status; a member accepts with 200.
func (p *HTTPPeers) AskFailsafe(ctx context.Context, req FailsafeRequest, targets map[string]string,
	timeout time.Duration) map[string]bool {
	body, err := json.Marshal(failsafeBody{Name: req.Name, ConnURL: req.ConnURL, APIURL: req.APIURL, Slots: req.Slots})
	out := make(map[string]bool, len(targets))
	if err != nil {
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, apiURL := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := false
			for attempt := 0; attempt < 2 && !ok && ctx.Err() == nil; attempt++ {
				var final bool
				ok, final = p.postFailsafe(ctx, failsafeURL(apiURL), body, timeout)
				if final {
					break
				}
			}
			mu.Lock()
			out[name] = ok
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// postFailsafe makes one attempt; final reports an answer not worth retrying
// (accepted, "Running as a leader", or failsafe mode disabled there).
func (p *HTTPPeers) postFailsafe(ctx context.Context, url string, body []byte, timeout time.Duration) (ok, final bool) {
	if url == "" {
		return false, true
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, true
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return false, false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxPeerDoc))
	switch resp.StatusCode {
	case http.StatusOK:
		return true, true
	case http.StatusInternalServerError, http.StatusBadGateway:
		return false, true
	}
	return false, false
}

// failsafeURL turns a member's api_url (http://host:8008/patroni) into its POST /failsafe URL.
func failsafeURL(apiURL string) string {
	if apiURL == "" {
		return ""
	}
	scheme, rest, ok := strings.Cut(apiURL, "://")
	if !ok {
		return ""
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host + "/failsafe"
}
