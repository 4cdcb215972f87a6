package exporter

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ListedFamily is one row of a golden family list (testdata/golden_pg15_*.txt).
type ListedFamily struct {
	Name   string // family name as exposed, e.g. pg_xact_age_seconds
	Type   string // lower-case TYPE: counter, gauge, histogram, summary, untyped
	Labels string // sorted label names, comma separated; "" for none ("-" in the file)
}

// ReadFamilyList parses a golden family list: one "name type labels" row per
// line, labels "-" for none; blank lines and lines starting with '#' are skipped.
func ReadFamilyList(r io.Reader) ([]ListedFamily, error) {
	var out []ListedFamily
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 3 {
			return nil, fmt.Errorf("line %d: want \"name type labels\", got %q", line, text)
		}
		f := ListedFamily{Name: fields[0], Type: fields[1], Labels: fields[2]}
		if f.Labels == "-" {
			f.Labels = ""
		}
		out = append(out, f)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read family list: %w", err)
	}
	return out, nil
}

// SeriesNames are the metric names a family's samples carry on the wire:
// a histogram's _bucket, _count and _sum, a summary's name, _count and _sum.
func (f ListedFamily) SeriesNames() []string {
	switch f.Type {
	case "histogram":
		return []string{f.Name + "_bucket", f.Name + "_count", f.Name + "_sum"}
	case "summary":
		return []string{f.Name, f.Name + "_count", f.Name + "_sum"}
	default:
		return []string{f.Name}
	}
}

// ActivityOnly reports whether a built-in family's rows exist only while an
// operation runs (VACUUM, CREATE INDEX, CLUSTER, a base backup) or a
// subscription has synced tables: an idle server serves no sample of it. The
// real-server tests do not stage them; the declaration tests cover them.
func ActivityOnly(name string) bool { return activityOnly[name] }

var activityOnly = map[string]bool{
	"pg_vacuuming_progress": true, "pg_indexing_blocks": true, "pg_indexing_tuples": true,
	"pg_indexing_partitions": true, "pg_indexing_lockers": true, "pg_clustering_tup_scan": true,
	"pg_clustering_progress": true, "pg_backup_phase": true, "pg_backup_total_bytes": true,
	"pg_backup_sent_bytes": true, "pg_subrel_count": true,
}
