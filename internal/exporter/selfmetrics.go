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
	descUp         = selfDesc("pg_up", "last scrape was able to connect to the server: 1 for yes, 0 for no", dto.MetricType_GAUGE, nil)
	descVersion    = selfDesc("pg_version", "server version number", dto.MetricType_GAUGE, nil)
	descInRecovery = selfDesc("pg_in_recovery", "server is in recovery mode? 1 for yes 0 for no", dto.MetricType_GAUGE, nil)

	descExporterUp     = selfDesc("pg_exporter_up", "always be 1 if your could retrieve metrics", dto.MetricType_GAUGE, nil)
	descExporterUptime = selfDesc("pg_exporter_uptime", "seconds since exporter primary server inited", dto.MetricType_GAUGE, nil)
	descScrapeTotal    = selfDesc("pg_exporter_scrape_total_count", "times exporter was scraped for metrics", dto.MetricType_COUNTER, nil)
	descScrapeErrors   = selfDesc("pg_exporter_scrape_error_count", "times exporter was scraped for metrics and failed", dto.MetricType_COUNTER, nil)
	descScrapeDuration = selfDesc("pg_exporter_scrape_duration", "seconds exporter spending on scraping", dto.MetricType_GAUGE, nil)
	descLastScrape     = selfDesc("pg_exporter_last_scrape_time", "last scrape timestamp", dto.MetricType_GAUGE, nil)

	serverLabels         = []string{"datname"}
	descServerDuration   = selfDesc("pg_exporter_server_scrape_duration", "seconds exporter server spending on scraping last scrape", dto.MetricType_GAUGE, serverLabels)
	descServerTotalSecs  = selfDesc("pg_exporter_server_scrape_total_seconds", "cumulative total seconds exporter server spending on scraping", dto.MetricType_GAUGE, serverLabels)
	descServerTotalCount = selfDesc("pg_exporter_server_scrape_total_count", "times exporter server was scraped for metrics", dto.MetricType_GAUGE, serverLabels)
	descServerErrorCount = selfDesc("pg_exporter_server_scrape_error_count", "cumulative times exporter server scrape failed (fatal scrape failures only)", dto.MetricType_GAUGE, serverLabels)
	queryLabels          = []string{"datname", "query"}
	descQueryTTL         = selfDesc("pg_exporter_query_cache_ttl", "times to live of query cache", dto.MetricType_GAUGE, queryLabels)
	descQueryTotal       = selfDesc("pg_exporter_query_scrape_total_count", "times exporter server was scraped for metrics", dto.MetricType_GAUGE, queryLabels)
	descQueryErrors      = selfDesc("pg_exporter_query_scrape_error_count", "times the query failed", dto.MetricType_GAUGE, queryLabels)
	descQueryPredSkips   = selfDesc("pg_exporter_query_scrape_predicate_skip_count", "times the query was skipped due to a predicate returning false", dto.MetricType_GAUGE, queryLabels)
	descQueryDuration    = selfDesc("pg_exporter_query_scrape_duration", "seconds query spending on scraping", dto.MetricType_GAUGE, queryLabels)
	descQueryMetricCount = selfDesc("pg_exporter_query_scrape_metric_count", "numbers of metrics been scraped from this query", dto.MetricType_GAUGE, queryLabels)
	descQueryHits        = selfDesc("pg_exporter_query_scrape_hit_count", "numbers been scraped from this query", dto.MetricType_GAUGE, queryLabels)
	descBuildInfo        = selfDesc("pg_exporter_build_info",
		"A metric with a constant '1' value labeled with version, revision, branch, goversion, builddate, goos, and goarch from which the exporter (pgnoded) was built.",
		dto.MetricType_GAUGE, []string{"version", "revision", "branch", "builddate", "goversion", "goos", "goarch"})
	descCollectorSuccess = selfDesc("pgnoded_exporter_collector_success", "Whether the collector's last run in this database succeeded (1) or failed (0).", dto.MetricType_GAUGE, queryLabels)
)

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// emitSelf sends pg_up, pg_version, pg_in_recovery and the pg_exporter_* statistics.
// pg_in_recovery is left out while postgres does not answer: a stale 0 from a dead
// primary would be counted as a second primary by Pigsty's split-brain rule.
func (c *pgCollector) emitSelf(out metricSink) {
	var ms []prometheus.Metric // sent at once: the text sink encodes a batch faster
	defer func() { out.add(ms...) }()
	up := 0.0
	if c.up {
		up = 1
	}
	ms = append(ms, gauge(descUp, up))
	if c.known {
		ms = append(ms, gauge(descVersion, float64(c.facts.version)))
	}
	if c.up {
		rec := 0.0
		if c.facts.inRecovery {
			rec = 1
		}
		ms = append(ms, gauge(descInRecovery, rec))
	}
	ms = append(ms, c.buildInfo)
	ms = append(ms, gauge(descExporterUp, 1))
	ms = append(ms, gauge(descExporterUptime, c.cfg.Now().Sub(c.started).Seconds()))
	ms = append(ms, prometheus.MustNewConstMetric(descScrapeTotal, prometheus.CounterValue, c.scrapes))
	ms = append(ms, prometheus.MustNewConstMetric(descScrapeErrors, prometheus.CounterValue, c.failures))
	ms = append(ms, gauge(descScrapeDuration, c.lastDur.Seconds()))
	ms = append(ms, gauge(descLastScrape, float64(c.lastAt.UnixNano())/1e9))
	if !c.known {
		return
	}
	ms = emitTarget(ms, c.main)
	for _, name := range sortedKeys(c.others) {
		ms = emitTarget(ms, c.others[name])
	}
}

func emitTarget(ms []prometheus.Metric, t *target) []prometheus.Metric {
	if t.totalCount == 0 {
		return ms
	}
	db := t.dbname
	ms = append(ms, gauge(descServerDuration, t.lastDuration.Seconds(), db))
	ms = append(ms, gauge(descServerTotalSecs, t.totalSeconds, db))
	ms = append(ms, gauge(descServerTotalCount, t.totalCount, db))
	ms = append(ms, gauge(descServerErrorCount, t.errorCount, db))
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
			ms = append(ms, sm)
		}
	}
	return ms
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
