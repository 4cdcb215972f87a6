// Command sidebyside prints `make bench-patroni`'s table: pgnoded and Patroni
// measured by mirrored benchmarks with the same settings (test/bench_patroni_test.go). It reads
// the raw output (go test -bench result lines, the FAILOVER / PATRONI FAILOVER
// summary lines, the Makefile's "### CMD:" markers) and writes one markdown
// table with a column per side. It measures nothing itself.
//
//	go run ./tools/sidebyside bin/bench-patroni.out
package main

import (
	"fmt"
	"io"
	"time"

	"github.com/pgnoded/pgnoded/tools/internal/benchraw"
)

func main() {
	benchraw.Main("sidebyside", func(in io.Reader, out io.Writer) error {
		res, err := parse(in)
		if err != nil {
			return err
		}
		writeTable(out, res, benchraw.Machine()+benchraw.LoadAverage())
		return nil
	})
}

// row is one line of the table.
type row struct{ what, settings, pgnoded, patroni string }

// writeTable renders the header, the table, the failed commands and the method notes.
func writeTable(w io.Writer, res *results, host string) {
	version := res.version
	if version == "" {
		version = "Patroni"
	}
	fmt.Fprintf(w, "pgnoded vs %s, side by side, %s\n", version, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "machine: %s\n", host)
	fmt.Fprintf(w, "command: make bench-patroni, which ran:\n")
	for _, c := range res.Commands {
		fmt.Fprintf(w, "  %s\n", c)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| measurement | settings | pgnoded | %s |\n", version)
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range rows(res) {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.what, r.settings, r.pgnoded, r.patroni)
	}
	for _, t := range res.timings {
		if f, ok := res.failover["patroni"][t]; ok && f.Failed > 0 && f.Why != "" {
			fmt.Fprintf(w, "\nPatroni at ttl %s, runs without a failover: %s\n", t, f.Why)
		}
	}
	for _, f := range res.Failed {
		fmt.Fprintf(w, "\n%s", f)
	}
	if len(res.Failed) > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, notes)
}

// notes explains how the two columns were measured.
const notes = `
Cells: median (min–max, n values); failover cells are over runs, each on a fresh cluster.
Both sides: 3 nodes on loopback, one embedded etcd (v3.7, the test process), PostgreSQL 15,
the same YAML settings (timings, use_pg_rewind, use_slots, data checksums, wal_keep_size,
shared_buffers 32MB) and the same measuring code (kill, writers, REST load, /proc sampling).
Node loss kills the supervisor (pgnoded or patroni) first, then postmaster and backends.
REST rows: 50 closed-loop clients, keep-alive when the server allows it; Patroni 3.0.2's API
speaks HTTP/1.0 and closes every connection, so each of its requests includes a new TCP dial.
Sync mode rows (test/sync_bench_test.go): one code path for both sides, only the daemon differs;
the cluster counts as ready once /sync names a standby its primary reports synchronous.
Footprint: pgnoded = the pgnoded process (its fence guard is listed apart); Patroni = the
python process(es) running patroni; postgres excluded on both sides.
`

// failoverSettings names the failover rows' settings.
func failoverSettings(timing string) string {
	return "ttl/loop_wait/retry_timeout " + timing + "; 3 nodes, 1 etcd, loopback"
}

// rows lists the table's rows in a fixed order.
func rows(res *results) []row {
	var out []row
	for _, t := range res.timings {
		pg, pt := res.failover["pgnoded"][t], res.failover["patroni"][t]
		_, havePG := res.failover["pgnoded"][t]
		_, havePT := res.failover["patroni"][t]
		for _, part := range []struct {
			what string
			get  func(failoverLine) spread
		}{
			{"node loss: kill → leader key gone (lease end)", func(f failoverLine) spread { return f.KillToLease }},
			{"node loss: leader key gone → first write", func(f failoverLine) spread { return f.LeaseToWrite }},
			{"node loss: kill → first acknowledged write", func(f failoverLine) spread { return f.KillToWrite }},
		} {
			out = append(out, row{what: part.what, settings: failoverSettings(t),
				pgnoded: failoverCell(pg, havePG, part.get), patroni: failoverCell(pt, havePT, part.get)})
		}
	}
	out = append(out, switchoverRows(res)...)
	out = append(out, syncRows(res)...)
	out = append(out, restRows(res)...)
	out = append(out, footprintRows(res)...)
	return out
}

// failoverCell formats one side's spread, or why it has none.
func failoverCell(f failoverLine, have bool, get func(failoverLine) spread) string {
	if !have {
		return "— (not run or failed)"
	}
	s := get(f)
	ok := f.Runs - f.Failed
	if !s.OK || ok == 0 {
		return fmt.Sprintf("**no failover within %d s** (0 of %d runs)", f.Limit, f.Runs)
	}
	cell := fmt.Sprintf("%.2f s", s.Med)
	if ok > 1 {
		cell = fmt.Sprintf("%.2f s (%.2f–%.2f, n=%d)", s.Med, s.Min, s.Max, ok)
	}
	if f.Failed > 0 {
		cell += fmt.Sprintf("; %d of %d runs: no failover within %d s", f.Failed, f.Runs, f.Limit)
	}
	return cell
}
