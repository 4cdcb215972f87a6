package exporter

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
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
		vt := prometheus.GaugeValue
		if col.Usage == UsageCounter {
			vt = prometheus.CounterValue
		}
		desc := prometheus.NewDesc(c.Name+"_"+col.MetricSuffix(), help, labelNames, nil)
		// A const metric surfaces the descriptor's own validation error, if any.
		if _, err := prometheus.NewConstMetric(desc, vt, 0, make([]string, len(labelNames))...); err != nil {
			return nil, fmt.Errorf("collector %q column %q: %w", c.Branch, col.Name, err)
		}
		cc.values = append(cc.values, valueColumn{col: col, desc: desc, vtype: vt})
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
// series would fail the whole scrape).
func (cc *compiled) collectRows(rows pgx.Rows, dbname string) ([]prometheus.Metric, error) {
	fields := rows.FieldDescriptions()
	index := make(map[string]int, len(fields))
	for i, f := range fields {
		index[f.Name] = i
	}
	pos := func(col *Column) (int, error) {
		i, ok := index[col.Name]
		if !ok {
			return 0, fmt.Errorf("column %q is configured but not returned by the query", col.Name)
		}
		return i, nil
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
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, fmt.Errorf("decode row: %w", err)
		}
		labels := make([]string, nLabels)
		keyBuf.Reset()
		for i, p := range labelPos {
			labels[i] = labelValue(vals[p])
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
			f, ok := numericValue(vals[valuePos[i]], v.col)
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
			samples = append(samples, sample{desc: v.desc, labels: pairs, value: f, counter: v.vtype == prometheus.CounterValue})
			sm := &samples[len(samples)-1] // cap is len(cc.values): no reallocation moves it
			sm.gauge.Value, sm.count.Value = &sm.value, &sm.value
			out = append(out, sm)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, byKey := range hists {
		for _, h := range byKey {
			m, err := prometheus.NewConstHistogram(cc.values[i].desc, h.count, h.sum, h.buckets, h.labels...)
			if err != nil {
				return nil, fmt.Errorf("histogram %s: %w", cc.values[i].col.Name, err)
			}
			out = append(out, m)
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

// numericValue converts a column value to a sample value: numbers as they are,
// booleans 1/0, timestamps as Unix seconds, intervals as seconds, NULL as the
// column default or NaN; then times the column scale. ok=false drops the sample
// (a value that cannot be read as a number).
func numericValue(v any, col *Column) (float64, bool) {
	var f float64
	switch t := v.(type) {
	case nil:
		if col.Default != nil {
			return *col.Default, true // the default is already in the metric's unit
		}
		return math.NaN(), true
	case float64:
		f = t
	case float32:
		f = float64(t)
	case int64:
		f = float64(t)
	case int32:
		f = float64(t)
	case int16:
		f = float64(t)
	case int8:
		f = float64(t)
	case int:
		f = float64(t)
	case uint32:
		f = float64(t)
	case uint64:
		f = float64(t)
	case bool:
		if t {
			f = 1
		}
	case pgtype.Numeric:
		fv, err := t.Float64Value()
		if err != nil || !fv.Valid {
			return numericValue(nil, col)
		}
		f = fv.Float64
	case time.Time:
		f = float64(t.UnixNano()) / 1e9
	case pgtype.Interval:
		f = float64(t.Microseconds)/1e6 + float64(t.Days)*86400 + float64(t.Months)*30*86400
	case time.Duration:
		f = t.Seconds()
	case string:
		p, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return 0, false
		}
		f = p
	case []byte:
		p, err := strconv.ParseFloat(strings.TrimSpace(string(t)), 64)
		if err != nil {
			return 0, false
		}
		f = p
	default:
		return 0, false
	}
	if col.Scale != 0 {
		f *= col.Scale
	}
	return f, true
}

// labelValue renders a column value as a label value; NULL is "".
func labelValue(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return strings.ToValidUTF8(t, "\uFFFD")
	case []byte:
		return strings.ToValidUTF8(string(t), "\uFFFD")
	case int64:
		return strconv.FormatInt(t, 10)
	case int32:
		return strconv.FormatInt(int64(t), 10)
	case int16:
		return strconv.FormatInt(int64(t), 10)
	case uint32:
		return strconv.FormatUint(uint64(t), 10)
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	case time.Time:
		return t.UTC().Format(time.RFC3339Nano)
	case netip.Prefix:
		if t.IsSingleIP() {
			return t.Addr().String()
		}
		return t.String()
	case pgtype.Numeric:
		if fv, err := t.Float64Value(); err == nil && fv.Valid {
			return strconv.FormatFloat(fv.Float64, 'g', -1, 64)
		}
		return ""
	}
	return strings.ToValidUTF8(fmt.Sprint(v), "\uFFFD")
}
