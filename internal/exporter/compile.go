package exporter

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// datnameLabel is added to per-database collectors that do not report the database themselves.
const datnameLabel = "datname"

// compiled is a collector with its descriptors built once.
type compiled struct {
	spec       *Collector
	labels     []*Column // LABEL columns, in label order
	values     []valueColumn
	addDatname bool // per-database collector without its own datname label
	// labelNames are the label names (datname last when added); sortedLabels
	// indexes them in name order, the order Prometheus wants label pairs in.
	labelNames   []string
	sortedLabels []int
}

type valueColumn struct {
	col   *Column
	fam   *famInfo
	desc  *prometheus.Desc
	vtype prometheus.ValueType // unused for histograms
}

func compile(c *Collector) (*compiled, error) {
	cc := &compiled{spec: c}
	var labelNames []string
	for i := range c.Columns {
		if col := &c.Columns[i]; col.Usage == UsageLabel {
			cc.labels = append(cc.labels, col)
			labelNames = append(labelNames, col.Name)
		}
	}
	if !c.ClusterLevel() && !slices.Contains(labelNames, datnameLabel) {
		cc.addDatname = true
		labelNames = append(labelNames, datnameLabel)
	}
	for i := range c.Columns {
		col := &c.Columns[i]
		if !col.Usage.isValue() {
			continue
		}
		help := col.Description
		if help == "" {
			help = fmt.Sprintf("%s column %s of collector %s", c.Name, col.Name, c.Branch)
		}
		vt, typ := prometheus.GaugeValue, dto.MetricType_GAUGE
		switch col.Usage {
		case UsageCounter:
			vt, typ = prometheus.CounterValue, dto.MetricType_COUNTER
		case UsageHistogram:
			typ = dto.MetricType_HISTOGRAM
		}
		name := c.Name + "_" + col.MetricSuffix()
		desc := prometheus.NewDesc(name, help, labelNames, nil)
		// A const metric surfaces the descriptor's own validation error, if any.
		if _, err := prometheus.NewConstMetric(desc, vt, 0, make([]string, len(labelNames))...); err != nil {
			return nil, fmt.Errorf("collector %q column %q: %w", c.Branch, col.Name, err)
		}
		cc.values = append(cc.values, valueColumn{col: col, fam: &famInfo{name: name, help: help, typ: typ}, desc: desc, vtype: vt})
	}
	cc.labelNames = labelNames
	cc.sortedLabels = make([]int, len(labelNames))
	for i := range cc.sortedLabels {
		cc.sortedLabels[i] = i
	}
	sort.Slice(cc.sortedLabels, func(a, b int) bool {
		return labelNames[cc.sortedLabels[a]] < labelNames[cc.sortedLabels[b]]
	})
	return cc, nil
}

// labelPairs builds the sorted label pairs of one row, shared by all its samples.
func (cc *compiled) labelPairs(values []string) []*dto.LabelPair {
	store := make([]dto.LabelPair, len(values))
	pairs := make([]*dto.LabelPair, len(values))
	for i, j := range cc.sortedLabels {
		store[i].Name, store[i].Value = &cc.labelNames[j], &values[j]
		pairs[i] = &store[i]
	}
	return pairs
}

// sample is a gauge or counter sample of one row. Samples of a row share their
// label pairs, which makes a scrape allocate a few objects per row rather than
// several per sample (prometheus.NewConstMetric builds pairs per sample).
type sample struct {
	fam     *famInfo // nil for a self metric (selfFams)
	desc    *prometheus.Desc
	labels  []*dto.LabelPair
	value   float64
	counter bool
	gauge   dto.Gauge
	count   dto.Counter
}

func (s *sample) Desc() *prometheus.Desc { return s.desc }

// Write only reads s: a cached sample may be written by two scrapes at once.
func (s *sample) Write(out *dto.Metric) error {
	out.Label = s.labels
	if s.counter {
		out.Counter = &s.count
	} else {
		out.Gauge = &s.gauge
	}
	return nil
}

// histAcc accumulates one histogram series from rows.
type histAcc struct {
	labels  []string
	count   uint64
	sum     float64
	buckets map[float64]uint64
}

// collectRows turns a result set into const metrics. A row whose label values repeat
// an earlier row adds to histograms but its plain samples are dropped (a duplicate
// series would fail the whole scrape). The caller closes rr.
func (cc *compiled) collectRows(rr *pgconn.ResultReader, dbname string) ([]prometheus.Metric, error) {
	fields := rr.FieldDescriptions()
	pos := func(col *Column) (int, error) {
		for i := len(fields) - 1; i >= 0; i-- { // the last of equal names wins
			if fields[i].Name == col.Name {
				return i, nil
			}
		}
		return 0, fmt.Errorf("column %q is configured but not returned by the query", col.Name)
	}
	labelPos := make([]int, len(cc.labels))
	for i, col := range cc.labels {
		p, err := pos(col)
		if err != nil {
			return nil, err
		}
		labelPos[i] = p
	}
	valuePos := make([]int, len(cc.values))
	for i, v := range cc.values {
		p, err := pos(v.col)
		if err != nil {
			return nil, err
		}
		valuePos[i] = p
	}
	nLabels := len(cc.labels)
	if cc.addDatname {
		nLabels++
	}
	var out []prometheus.Metric
	seen := map[string]bool{}
	var hists map[int]map[string]*histAcc // value index -> label key -> accumulator
	var keyBuf strings.Builder
	for rr.NextRow() {
		vals := rr.Values()
		labels := make([]string, nLabels)
		keyBuf.Reset()
		for i, p := range labelPos {
			if vals[p] != nil {
				labels[i] = textLabel(fields[p].DataTypeOID, vals[p])
			}
			keyBuf.WriteString(labels[i])
			keyBuf.WriteByte(0xff)
		}
		if cc.addDatname {
			labels[nLabels-1] = dbname
		}
		key := keyBuf.String()
		dup := seen[key] // histograms aggregate such rows; plain samples keep the first
		seen[key] = true
		var (
			pairs   []*dto.LabelPair
			samples []sample
		)
		if !dup {
			pairs = cc.labelPairs(labels)
			samples = make([]sample, 0, len(cc.values))
		}
		for i, v := range cc.values {
			if dup && v.col.Usage != UsageHistogram {
				continue
			}
			p := valuePos[i]
			f, ok := numericValue(fields[p].DataTypeOID, vals[p], v.col)
			if !ok {
				continue
			}
			if v.col.Usage == UsageHistogram {
				if hists == nil {
					hists = map[int]map[string]*histAcc{}
				}
				observe(hists, i, key, labels, f, v.col.Buckets)
				continue
			}
			samples = append(samples, sample{fam: v.fam, desc: v.desc, labels: pairs, value: f, counter: v.vtype == prometheus.CounterValue})
			sm := &samples[len(samples)-1] // cap is len(cc.values): no reallocation moves it
			sm.gauge.Value, sm.count.Value = &sm.value, &sm.value
			out = append(out, sm)
		}
	}
	for i, byKey := range hists {
		for _, h := range byKey {
			out = append(out, newHistSample(cc.values[i].fam, cc.values[i].desc, cc.labelPairs(h.labels), h))
		}
	}
	return out, nil
}

func observe(hists map[int]map[string]*histAcc, i int, key string, labels []string, f float64, bounds []float64) {
	byKey := hists[i]
	if byKey == nil {
		byKey = map[string]*histAcc{}
		hists[i] = byKey
	}
	h := byKey[key]
	if h == nil {
		h = &histAcc{labels: labels, buckets: make(map[float64]uint64, len(bounds))}
		for _, b := range bounds {
			h.buckets[b] = 0
		}
		byKey[key] = h
	}
	if math.IsNaN(f) {
		return
	}
	h.count++
	h.sum += f
	for _, b := range bounds {
		if f <= b {
			h.buckets[b]++ // cumulative: every bound at or above the value
		}
	}
}

// numericValue converts a column value (text format, nil for NULL) to a
// sample value with textNumber; NULL is the column default or NaN; then times
// the column scale. ok=false drops the sample (a value that cannot be read as
// a number).
func numericValue(oid uint32, v []byte, col *Column) (float64, bool) {
	if v == nil {
		if col.Default != nil {
			return *col.Default, true // the default is already in the metric's unit
		}
		return math.NaN(), true
	}
	f, ok := textNumber(oid, v)
	if !ok {
		return 0, false
	}
	if col.Scale != 0 {
		f *= col.Scale
	}
	return f, true
}
