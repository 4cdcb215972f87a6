package exporter

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Intro and self metrics under pg_exporter's names and TYPEs (what Pigsty's
// pgsql-exporter dashboard queries), plus one pgnoded_ metric of our own.
var (
	descUp         = prometheus.NewDesc("pg_up", "last scrape was able to connect to the server: 1 for yes, 0 for no", nil, nil)
	descVersion    = prometheus.NewDesc("pg_version", "server version number", nil, nil)
	descInRecovery = prometheus.NewDesc("pg_in_recovery", "server is in recovery mode? 1 for yes 0 for no", nil, nil)

	descExporterUp     = prometheus.NewDesc("pg_exporter_up", "always be 1 if your could retrieve metrics", nil, nil)
	descExporterUptime = prometheus.NewDesc("pg_exporter_uptime", "seconds since exporter primary server inited", nil, nil)
	descScrapeTotal    = prometheus.NewDesc("pg_exporter_scrape_total_count", "times exporter was scraped for metrics", nil, nil)
	descScrapeErrors   = prometheus.NewDesc("pg_exporter_scrape_error_count", "times exporter was scraped for metrics and failed", nil, nil)
	descScrapeDuration = prometheus.NewDesc("pg_exporter_scrape_duration", "seconds exporter spending on scraping", nil, nil)
	descLastScrape     = prometheus.NewDesc("pg_exporter_last_scrape_time", "last scrape timestamp", nil, nil)

	serverLabels         = []string{"datname"}
	descServerDuration   = prometheus.NewDesc("pg_exporter_server_scrape_duration", "seconds exporter server spending on scraping last scrape", serverLabels, nil)
	descServerTotalSecs  = prometheus.NewDesc("pg_exporter_server_scrape_total_seconds", "cumulative total seconds exporter server spending on scraping", serverLabels, nil)
	descServerTotalCount = prometheus.NewDesc("pg_exporter_server_scrape_total_count", "times exporter server was scraped for metrics", serverLabels, nil)
	descServerErrorCount = prometheus.NewDesc("pg_exporter_server_scrape_error_count", "cumulative times exporter server scrape failed (fatal scrape failures only)", serverLabels, nil)
	queryLabels          = []string{"datname", "query"}
	descQueryTTL         = prometheus.NewDesc("pg_exporter_query_cache_ttl", "times to live of query cache", queryLabels, nil)
	descQueryTotal       = prometheus.NewDesc("pg_exporter_query_scrape_total_count", "times exporter server was scraped for metrics", queryLabels, nil)
	descQueryErrors      = prometheus.NewDesc("pg_exporter_query_scrape_error_count", "times the query failed", queryLabels, nil)
	descQueryPredSkips   = prometheus.NewDesc("pg_exporter_query_scrape_predicate_skip_count", "times the query was skipped due to a predicate returning false", queryLabels, nil)
	descQueryDuration    = prometheus.NewDesc("pg_exporter_query_scrape_duration", "seconds query spending on scraping", queryLabels, nil)
	descQueryMetricCount = prometheus.NewDesc("pg_exporter_query_scrape_metric_count", "numbers of metrics been scraped from this query", queryLabels, nil)
	descQueryHits        = prometheus.NewDesc("pg_exporter_query_scrape_hit_count", "numbers been scraped from this query", queryLabels, nil)
	descBuildInfo        = prometheus.NewDesc("pg_exporter_build_info",
		"A metric with a constant '1' value labeled with version, revision, branch, goversion, builddate, goos, and goarch from which the exporter (pgnoded) was built.",
		[]string{"version", "revision", "branch", "builddate", "goversion", "goos", "goarch"}, nil)
	descCollectorSuccess = prometheus.NewDesc("pgnoded_exporter_collector_success", "Whether the collector's last run in this database succeeded (1) or failed (0).", queryLabels, nil)
)

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// emitSelf sends pg_up, pg_version, pg_in_recovery and the pg_exporter_* statistics.
// pg_in_recovery is left out while postgres does not answer: a stale 0 from a dead
// primary would be counted as a second primary by Pigsty's split-brain rule.
func (c *pgCollector) emitSelf(ch chan<- prometheus.Metric) {
	up := 0.0
	if c.up {
		up = 1
	}
	ch <- gauge(descUp, up)
	if c.known {
		ch <- gauge(descVersion, float64(c.facts.version))
	}
	if c.up {
		rec := 0.0
		if c.facts.inRecovery {
			rec = 1
		}
		ch <- gauge(descInRecovery, rec)
	}
	ch <- c.buildInfo
	ch <- gauge(descExporterUp, 1)
	ch <- gauge(descExporterUptime, c.cfg.Now().Sub(c.started).Seconds())
	ch <- prometheus.MustNewConstMetric(descScrapeTotal, prometheus.CounterValue, c.scrapes)
	ch <- prometheus.MustNewConstMetric(descScrapeErrors, prometheus.CounterValue, c.failures)
	ch <- gauge(descScrapeDuration, c.lastDur.Seconds())
	ch <- gauge(descLastScrape, float64(c.lastAt.UnixNano())/1e9)
	if !c.known {
		return
	}
	emitTarget(ch, c.main)
	for _, name := range sortedKeys(c.others) {
		emitTarget(ch, c.others[name])
	}
}

func emitTarget(ch chan<- prometheus.Metric, t *target) {
	if t.totalCount == 0 {
		return
	}
	db := t.dbname
	ch <- gauge(descServerDuration, t.lastDuration.Seconds(), db)
	ch <- gauge(descServerTotalSecs, t.totalSeconds, db)
	ch <- gauge(descServerTotalCount, t.totalCount, db)
	ch <- gauge(descServerErrorCount, t.errorCount, db)
	seen := map[string]bool{}
	for _, cc := range t.planned {
		name := cc.spec.Name
		if seen[name] {
			continue // two branches of one name both active: report the first
		}
		seen[name] = true
		st := t.state[cc.spec.Branch]
		if st == nil {
			continue
		}
		ok := 0.0
		if st.success {
			ok = 1
		}
		// The eight gauges of one collector share their label pairs (datname < query).
		names, values := [2]string{datnameLabel, "query"}, [2]string{db, name}
		store := [2]dto.LabelPair{{Name: &names[0], Value: &values[0]}, {Name: &names[1], Value: &values[1]}}
		pairs := []*dto.LabelPair{&store[0], &store[1]}
		samples := [8]sample{
			{desc: descQueryTTL, value: cc.spec.TTL.Seconds()},
			{desc: descQueryTotal, value: st.total},
			{desc: descQueryErrors, value: st.errors},
			{desc: descQueryPredSkips, value: st.predSkips},
			{desc: descQueryDuration, value: st.lastDuration.Seconds()},
			{desc: descQueryMetricCount, value: float64(st.metricCount)},
			{desc: descQueryHits, value: st.hits},
			{desc: descCollectorSuccess, value: ok},
		}
		for i := range samples {
			sm := &samples[i]
			sm.labels = pairs
			sm.gauge.Value = &sm.value
			ch <- sm
		}
	}
}

// moduleVersion is the main module's version from the Go build information.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// buildInfoMetric is pg_exporter_build_info for this binary: version from
// Config.Version, revision and build date from the Go build's VCS stamp.
func buildInfoMetric(version string) prometheus.Metric {
	var revision, date string
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				date = s.Value
			}
		}
	}
	return gauge(descBuildInfo, 1, version, revision, "", date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
