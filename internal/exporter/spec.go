package exporter

import (
	"slices"
	"strings"
	"time"
)

// Usage is what a result column becomes (pg_exporter's column "usage").
type Usage string

// Column usages.
const (
	UsageDiscard   Usage = "DISCARD"   // ignored
	UsageLabel     Usage = "LABEL"     // a label on every value of the row
	UsageCounter   Usage = "COUNTER"   // a counter <name>_<column>
	UsageGauge     Usage = "GAUGE"     // a gauge <name>_<column>
	UsageHistogram Usage = "HISTOGRAM" // one observation per row into a snapshot histogram
)

// isValue reports whether the column yields samples.
func (u Usage) isValue() bool {
	return u == UsageCounter || u == UsageGauge || u == UsageHistogram
}

// Column describes one result column of a collector query.
type Column struct {
	Name        string    // column name in the result set
	Usage       Usage     // what it becomes
	Rename      string    // metric suffix instead of Name
	Description string    // HELP text
	Default     *float64  // value used for NULL; nil means NaN
	Scale       float64   // multiplier; 0 means none
	Buckets     []float64 // HISTOGRAM upper bounds, increasing
	Line        int       // line in the source file
}

// MetricSuffix is the metric name part taken from this column.
func (c *Column) MetricSuffix() string {
	if c.Rename != "" {
		return c.Rename
	}
	return c.Name
}

// Predicate is a query that gates a collector: it must return one boolean row, true to run.
type Predicate struct {
	Name  string
	Query string
	TTL   time.Duration // how long its answer is reused; 0 = every scrape
	Line  int
}

// Collector is one collector definition (a "branch" in pg_exporter's terms).
type Collector struct {
	Branch     string        // top-level key, unique across the configuration
	Name       string        // metric prefix (defaults to Branch)
	Desc       string        // description
	Query      string        // SQL
	TTL        time.Duration // result cache lifetime; 0 = no cache
	Timeout    time.Duration // per-query timeout; 0 = Config.DefaultTimeout; <0 = none (scrape deadline only)
	Priority   int           // execution order (lower first), ties by file order
	MinVersion int           // server_version_num lower bound, inclusive; 0 = none
	MaxVersion int           // server_version_num upper bound, exclusive; 0 = none
	Fatal      bool          // failure sets pg_up to 0 and ends the scrape
	Skip       bool          // never run
	Tags       []string      // planning tags (cluster, primary, replica, dbname:x, ...)
	Predicates []Predicate
	Columns    []Column
	File       string // source file ("" for the embedded default set)
	Line       int    // line of the branch key
}

// HasTag reports whether the collector carries tag t.
func (c *Collector) HasTag(t string) bool { return slices.Contains(c.Tags, t) }

// ClusterLevel reports a collector that runs once per server (tag "cluster"),
// as opposed to one that runs in every discovered database.
func (c *Collector) ClusterLevel() bool { return c.HasTag(tagCluster) }

// VersionOK reports whether the collector supports server_version_num v.
func (c *Collector) VersionOK(v int) bool {
	if c.MinVersion != 0 && v < c.MinVersion {
		return false
	}
	if c.MaxVersion != 0 && v >= c.MaxVersion {
		return false
	}
	return true
}

// Planning tags with a fixed meaning.
const (
	tagCluster = "cluster"
	tagPrimary = "primary"
	tagMaster  = "master"
	tagStandby = "standby"
	tagReplica = "replica"

	prefixDBName    = "dbname:"
	prefixUsername  = "username:"
	prefixExtension = "extension:"
	prefixSchema    = "schema:"
	prefixNot       = "not:"
)

// serverFacts are what tag gating is decided against, per database.
type serverFacts struct {
	version    int
	inRecovery bool
	user       string
	dbname     string
	extensions map[string]bool // nil when not gathered
	schemas    map[string]bool
	tags       []string // the exporter's own tags (Config.Tags)
}

// needsCatalogFacts reports whether gating needs extensions/schemas of the database.
func (c *Collector) needsCatalogFacts() bool {
	for _, t := range c.Tags {
		if strings.HasPrefix(t, prefixExtension) || strings.HasPrefix(t, prefixSchema) {
			return true
		}
	}
	return false
}

// Applies reports whether the collector runs against a server with these facts.
func (c *Collector) applies(f serverFacts) bool {
	if c.Skip || !c.VersionOK(f.version) {
		return false
	}
	for _, t := range c.Tags {
		switch {
		case t == tagCluster:
		case t == tagPrimary || t == tagMaster:
			if f.inRecovery {
				return false
			}
		case t == tagStandby || t == tagReplica:
			if !f.inRecovery {
				return false
			}
		case strings.HasPrefix(t, prefixDBName):
			if f.dbname != strings.TrimPrefix(t, prefixDBName) {
				return false
			}
		case strings.HasPrefix(t, prefixUsername):
			if f.user != strings.TrimPrefix(t, prefixUsername) {
				return false
			}
		case strings.HasPrefix(t, prefixExtension):
			if !f.extensions[strings.TrimPrefix(t, prefixExtension)] {
				return false
			}
		case strings.HasPrefix(t, prefixSchema):
			if !f.schemas[strings.TrimPrefix(t, prefixSchema)] {
				return false
			}
		case strings.HasPrefix(t, prefixNot):
			if slices.Contains(f.tags, strings.TrimPrefix(t, prefixNot)) {
				return false
			}
		default:
			if !slices.Contains(f.tags, t) {
				return false
			}
		}
	}
	return true
}
