package exporter

import (
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The postgres metrics of a /metrics scrape are written in the Prometheus text
// format (0.0.4, what promhttp serves without OpenMetrics) by textSink rather
// than through the registry's Gather: a collector's cached result is encoded
// once, when it is cached, and later scrapes within its TTL copy those bytes;
// the rest of the response (Go runtime, process, HA and status metrics) is
// gathered from a registry as before. The output parses as promhttp's does
// (exposition_test.go compares the two with expfmt's parser and promtool).

// famInfo is what the text format needs of a metric family besides its samples.
type famInfo struct {
	name, help string
	typ        dto.MetricType
}

// metricSink receives the metrics of a scrape of postgres; safe for
// concurrent use (databases are scraped at once).
type metricSink interface {
	add(ms ...prometheus.Metric)
	// addCached sends st's cached result, which is fresh.
	addCached(st *collectorState)
}

// chanSink sends metrics to a registry's Collect channel.
type chanSink chan<- prometheus.Metric

func (c chanSink) add(ms ...prometheus.Metric) {
	for _, m := range ms {
		c <- m
	}
}

func (c chanSink) addCached(st *collectorState) { c.add(st.cached...) }

// histSample is one histogram series of a HISTOGRAM column.
type histSample struct {
	fam    *famInfo
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	count  uint64
	sum    float64
	bounds []float64 // ascending
	counts []uint64  // cumulative, per bound
	hist   dto.Histogram
}

func newHistSample(fam *famInfo, desc *prometheus.Desc, labels []*dto.LabelPair, h *histAcc) *histSample {
	s := &histSample{fam: fam, desc: desc, labels: labels, count: h.count, sum: h.sum}
	for b := range h.buckets {
		s.bounds = append(s.bounds, b)
	}
	sort.Float64s(s.bounds)
	s.counts = make([]uint64, len(s.bounds))
	buckets := make([]dto.Bucket, len(s.bounds))
	for i, b := range s.bounds {
		s.counts[i] = h.buckets[b]
		buckets[i].UpperBound, buckets[i].CumulativeCount = &s.bounds[i], &s.counts[i]
		s.hist.Bucket = append(s.hist.Bucket, &buckets[i])
	}
	s.hist.SampleCount, s.hist.SampleSum = &s.count, &s.sum
	return s
}

func (h *histSample) Desc() *prometheus.Desc { return h.desc }

// Write only reads h: a cached series may be written by two scrapes at once.
func (h *histSample) Write(out *dto.Metric) error {
	out.Label = h.labels
	out.Histogram = &h.hist
	return nil
}

// selfFams are the families of the metrics the postgres collector emits
// besides its collectors' (pg_up, pg_exporter_*, ...), by descriptor.
var selfFams = map[*prometheus.Desc]*famInfo{}

// selfDesc makes a descriptor of a self metric and records its family.
func selfDesc(name, help string, typ dto.MetricType, labels []string) *prometheus.Desc {
	d := prometheus.NewDesc(name, help, labels, nil)
	selfFams[d] = &famInfo{name: name, help: help, typ: typ}
	return d
}

// famChunk is the sample lines of one family from one collector run.
type famChunk struct {
	fam  *famInfo
	text []byte
}

// famText is one family of a scrape: its info and its chunks of sample lines.
type famText struct {
	fam    *famInfo
	chunks [][]byte
}

// textSink encodes a scrape's postgres metrics into the text format, by family.
type textSink struct {
	constLabels []*dto.LabelPair // sorted by name

	mu   sync.Mutex
	fams map[string]*famText
}

func newTextSink(constLabels []*dto.LabelPair) *textSink {
	return &textSink{constLabels: constLabels, fams: map[string]*famText{}}
}

func (s *textSink) add(ms ...prometheus.Metric) { s.merge(s.encode(ms)) }

func (s *textSink) addCached(st *collectorState) {
	if st.text == nil {
		st.text = s.encode(st.cached) // the owner of st is the only writer during a scrape
	}
	s.merge(st.text)
}

func (s *textSink) merge(chunks []famChunk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range chunks {
		ft := s.fams[c.fam.name]
		if ft == nil {
			ft = &famText{fam: c.fam}
			s.fams[c.fam.name] = ft
		} else if ft.fam.typ != c.fam.typ {
			continue // another collector's family of that name and another type: the first one wins
		}
		ft.chunks = append(ft.chunks, c.text)
	}
}

// encode writes ms's sample lines, by family in the order first seen; a
// metric whose family is not known is left out.
func (s *textSink) encode(ms []prometheus.Metric) []famChunk {
	var (
		chunks []famChunk
		index  map[*famInfo]int
		m      dto.Metric
	)
	for _, mt := range ms {
		var fam *famInfo
		smp, _ := mt.(*sample)
		switch mt := mt.(type) {
		case *sample:
			fam = mt.fam
		case *histSample:
			fam = mt.fam
		}
		if fam == nil {
			fam = selfFams[mt.Desc()]
		}
		if fam == nil {
			continue
		}
		if smp == nil {
			m.Reset()
			if mt.Write(&m) != nil {
				continue
			}
		}
		i, ok := index[fam]
		if !ok {
			if index == nil {
				index = map[*famInfo]int{}
			}
			i = len(chunks)
			index[fam] = i
			chunks = append(chunks, famChunk{fam: fam})
		}
		if smp != nil { // a gauge or counter sample, written without building its dto.Metric
			chunks[i].text = s.appendSample(chunks[i].text, fam.name, "", smp.labels, "", 0, smp.value)
			continue
		}
		chunks[i].text = s.appendMetric(chunks[i].text, fam, &m)
	}
	return chunks
}

// appendMetric appends m's sample lines as expfmt writes them.
func (s *textSink) appendMetric(b []byte, fam *famInfo, m *dto.Metric) []byte {
	switch {
	case m.Histogram != nil:
		h := m.Histogram
		inf := false
		for _, bk := range h.Bucket {
			b = s.appendSample(b, fam.name, "_bucket", m.Label, "le", bk.GetUpperBound(), float64(bk.GetCumulativeCount()))
			inf = inf || math.IsInf(bk.GetUpperBound(), +1)
		}
		if !inf {
			b = s.appendSample(b, fam.name, "_bucket", m.Label, "le", math.Inf(+1), float64(h.GetSampleCount()))
		}
		b = s.appendSample(b, fam.name, "_sum", m.Label, "", 0, h.GetSampleSum())
		return s.appendSample(b, fam.name, "_count", m.Label, "", 0, float64(h.GetSampleCount()))
	case m.Counter != nil:
		return s.appendSample(b, fam.name, "", m.Label, "", 0, m.Counter.GetValue())
	case m.Gauge != nil:
		return s.appendSample(b, fam.name, "", m.Label, "", 0, m.Gauge.GetValue())
	case m.Untyped != nil:
		return s.appendSample(b, fam.name, "", m.Label, "", 0, m.Untyped.GetValue())
	}
	return b
}

// appendSample appends one line: name+suffix, the labels merged with the
// constant labels in name order, an extra label (le) last, and the value.
func (s *textSink) appendSample(b []byte, name, suffix string, labels []*dto.LabelPair, extra string, extraValue, v float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if len(labels)+len(s.constLabels) > 0 || extra != "" {
		b = append(b, '{')
		first := true
		label := func(n, v string) {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, n...)
			b = append(b, `="`...)
			b = appendEscaped(b, v, true)
			b = append(b, '"')
		}
		i, j := 0, 0
		for i < len(labels) || j < len(s.constLabels) {
			if j == len(s.constLabels) || (i < len(labels) && labels[i].GetName() < s.constLabels[j].GetName()) {
				label(labels[i].GetName(), labels[i].GetValue())
				i++
			} else {
				label(s.constLabels[j].GetName(), s.constLabels[j].GetValue())
				j++
			}
		}
		if extra != "" {
			if !first {
				b = append(b, ',')
			}
			b = append(b, extra...)
			b = append(b, `="`...)
			b = appendFloat(b, extraValue)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	return append(b, '\n')
}

// appendFloat formats v as expfmt does.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case v == 1:
		return append(b, '1')
	case v == 0:
		return append(b, '0')
	case v == -1:
		return append(b, "-1"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendEscaped escapes a HELP text (backslash, newline) or a label value
// (also the double quote), as the text format wants.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

var typeNames = map[dto.MetricType]string{
	dto.MetricType_COUNTER: "counter", dto.MetricType_GAUGE: "gauge",
	dto.MetricType_HISTOGRAM: "histogram", dto.MetricType_UNTYPED: "untyped",
}

// appendTo appends the sink's families and mfs (gathered elsewhere, their
// names distinct from the sink's) to b in name order.
func (s *textSink) appendTo(b []byte, mfs []*dto.MetricFamily) ([]byte, error) {
	names := make([]string, 0, len(s.fams))
	for n := range s.fams {
		names = append(names, n)
	}
	slices.Sort(names)
	w := &appendWriter{b: b}
	for len(names) > 0 || len(mfs) > 0 {
		if len(names) == 0 || (len(mfs) > 0 && mfs[0].GetName() < names[0]) {
			if _, err := expfmt.MetricFamilyToText(w, mfs[0]); err != nil {
				return w.b, err
			}
			mfs = mfs[1:]
			continue
		}
		ft := s.fams[names[0]]
		names = names[1:]
		b := w.b
		b = append(b, "# HELP "...)
		b = append(b, ft.fam.name...)
		b = append(b, ' ')
		b = appendEscaped(b, ft.fam.help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, ft.fam.name...)
		b = append(b, ' ')
		b = append(b, typeNames[ft.fam.typ]...)
		b = append(b, '\n')
		for _, c := range ft.chunks {
			b = append(b, c...)
		}
		w.b = b
	}
	return w.b, nil
}

// appendWriter is an io.Writer appending to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// plainNames reports whether every name a compiled collector exposes is a
// legacy Prometheus name, which textSink writes unquoted; a collector set
// with any other is served through promhttp.
func plainNames(cc *compiled) bool {
	for _, n := range cc.labelNames {
		if !model.LabelName(n).IsValidLegacy() {
			return false
		}
	}
	for _, v := range cc.values {
		if !model.IsValidLegacyMetricName(v.fam.name) {
			return false
		}
	}
	return true
}

// metricsHandler serves /metrics: a text-format scrape through textSink, any
// other format (protobuf, when asked for) through fallback, which serves the
// whole registry. Both count against inFlight, and both answer uncompressed
// (identity) whatever the client offers, as Patroni's /metrics does: a gzip
// writer holds ~1.2 MiB of compress/flate tables, kept between scrapes by any
// pool, for a response Prometheus reads once per scrape interval.
type metricsHandler struct {
	e        *Exporter
	fallback http.Handler  // promhttp, compression disabled
	inFlight chan struct{} // a slot per scrape served at once
	bufs     sync.Pool     // *[]byte
	lastSize atomic.Int64  // of the last response, to size the next one's buffer
}

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		http.Error(w, "too many scrapes at once", http.StatusServiceUnavailable)
		return
	}
	format := expfmt.Negotiate(r.Header)
	if format.FormatType() != expfmt.TypeTextPlain || !h.e.pg.plainNames() {
		h.fallback.ServeHTTP(w, r)
		return
	}
	sink := newTextSink(h.e.constLabels)
	h.e.pg.collectInto(sink)
	mfs, err := h.e.others.Gather()
	if err != nil {
		h.e.log.Warn("gathering metrics", "err", err) // served without what failed, as promhttp's ContinueOnError
	}
	bp, _ := h.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	if need := int(h.lastSize.Load()) * 9 / 8; cap(*bp) < need {
		*bp = make([]byte, 0, need)
	}
	buf, err := sink.appendTo((*bp)[:0], mfs)
	h.lastSize.Store(int64(len(buf)))
	*bp = buf
	defer h.bufs.Put(bp)
	if err != nil {
		h.e.log.Warn("encoding metrics", "err", err)
		http.Error(w, "encoding metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", string(format))
	hdr.Set("Content-Length", strconv.Itoa(len(buf))) // uncompressed (metricsHandler)
	_, _ = w.Write(buf)
}

// constLabelPairs is labels as sorted label pairs.
func constLabelPairs(labels prometheus.Labels) []*dto.LabelPair {
	pairs := make([]*dto.LabelPair, 0, len(labels))
	for n, v := range labels {
		pairs = append(pairs, &dto.LabelPair{Name: &n, Value: &v})
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].GetName() < pairs[j].GetName() })
	return pairs
}
