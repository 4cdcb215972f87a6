package restapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// A rendition holds everything derived from one published snapshot: health
// facts and pre-rendered bodies. It is built lazily, once, and shared by all
// requests that see the same snapshot pointer, so steady-state requests
// neither marshal JSON nor take a lock.
type rendition struct {
	snap  *cluster.Snapshot
	views [2]docView // index 1: DCS view valid; 0: expired (Patroni's dcs.cluster is None)

	clusterOnce  sync.Once
	clusterBody  body
	historyOnce  sync.Once
	historyBody  body
	configOnce   sync.Once
	configBody   body
	failsafeOnce sync.Once
	failsafeBody body
}

// docView is the status document and metrics for one DCS-availability state.
type docView struct {
	factsOnce   sync.Once
	doc         statusDoc
	facts       facts
	statusOnce  sync.Once
	status      body
	metricsOnce sync.Once
	metrics     body
}

// body is a pre-rendered response: header values are shared, never mutated.
type body struct {
	code  int
	data  []byte
	ctype []string
	clen  []string
}

var (
	ctJSON    = []string{"application/json"}
	ctText    = []string{"text/plain; charset=utf-8"}
	ctMetrics = []string{"text/plain; version=0.0.4; charset=utf-8"}
)

func newBody(code int, ctype []string, data []byte) body {
	return body{code: code, data: data, ctype: ctype, clen: []string{strconv.Itoa(len(data))}}
}

func jsonBody(code int, v any) body {
	data, err := json.Marshal(v)
	if err != nil { // only unmarshalable values in tags/config maps can get here
		return newBody(http.StatusInternalServerError, ctText, []byte("cannot render JSON: "+err.Error()))
	}
	return newBody(code, ctJSON, data)
}

// write sends b with status code (b.code unless code != 0).
func (b *body) write(w http.ResponseWriter, code int) {
	if code == 0 {
		code = b.code
	}
	h := w.Header()
	h["Content-Type"] = b.ctype
	h["Content-Length"] = b.clen
	w.WriteHeader(code)
	_, _ = w.Write(b.data)
}

// renditions caches the rendition of the latest snapshot.
type renditions struct {
	cur atomic.Pointer[rendition]
}

// get returns the rendition of s (nil for a nil snapshot).
func (r *renditions) get(s *cluster.Snapshot) *rendition {
	if s == nil {
		return nil
	}
	cur := r.cur.Load()
	if cur != nil && cur.snap == s {
		return cur
	}
	fresh := &rendition{snap: s}
	if r.cur.CompareAndSwap(cur, fresh) {
		return fresh
	}
	if again := r.cur.Load(); again != nil && again.snap == s {
		return again // another request installed it first
	}
	return fresh // the snapshot moved on meanwhile; answer from ours without caching
}

// view returns the facts/document for the DCS-availability state dcs.
func (rd *rendition) view(dcs bool) *docView {
	i := 0
	if dcs {
		i = 1
	}
	v := &rd.views[i]
	v.factsOnce.Do(func() { v.doc, v.facts = buildStatus(rd.snap, dcs) })
	return v
}

// statusBody is the JSON status document (status code chosen by the caller).
func (v *docView) statusBody() *body {
	v.statusOnce.Do(func() { v.status = jsonBody(http.StatusOK, &v.doc) })
	return &v.status
}

// metricsBody is the /metrics text.
func (rd *rendition) metricsBody(v *docView) *body {
	v.metricsOnce.Do(func() {
		v.metrics = newBody(http.StatusOK, ctMetrics, renderMetrics(rd.snap, &v.doc))
	})
	return &v.metrics
}
