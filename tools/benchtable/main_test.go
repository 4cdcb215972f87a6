package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `### CMD: go test -tags integration -bench X ./test/
BOOTSTRAP 3 nodes runs=3 to healthy: min 4.90s med 5.10s max 7.60s
FAILOVER ttl=3/1/1 runs=3 kill->lease-end min 2.10s med 2.50s max 3.00s | lease-end->write min 0.10s med 0.20s max 0.30s | kill->write min 2.30s med 2.70s max 3.20s
PGCRASH ttl=10/2/4 runs=3 kill->write min 0.20s med 0.40s max 0.60s | in place 3/3
BenchmarkOptionsPrimary/closed-loop-2   108246  10048 ns/op  6625 max_us  439.0 p50_us  2086 p99_us  99518 req/s
BenchmarkOptionsPrimary/closed-loop-2   100000  10048 ns/op  6625 max_us  439.0 p50_us  3000 p99_us  90000 req/s
BenchmarkOptionsPrimary/closed-loop-2   100000  10048 ns/op  6625 max_us  439.0 p50_us  1000 p99_us  95000 req/s
BenchmarkSomethingNew-2   1   5 ns/op   1.5 s_outage
BenchmarkSwitchoverUnderLoad-2   1   9 ns/op   1000 acked-rows   40 answer-med-ms   0 lost-rows   230 outage-max-ms   150 outage-med-ms   120 outage-min-ms   6 switchovers
BenchmarkSwitchoverUnderLoad-2   1   9 ns/op   2000 acked-rows   60 answer-med-ms   0 lost-rows   200 outage-max-ms   140 outage-med-ms   125 outage-min-ms   6 switchovers
### FAILED (1): go test -bench Y ./test/
`

func TestTable(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeTable(&b, res, "test machine")
	out := b.String()
	for _, want := range []string{
		"machine: test machine",
		"  go test -tags integration -bench X ./test/",
		"| bootstrap: empty dirs → 1 primary + 2 healthy replicas | 4.90 s | 5.10 s | 7.60 s | 3 |",
		"kill → first write | 2.30 s | 2.70 s | 3.20 s | 3 | loopback, 1 etcd, 3 nodes, ttl/loop_wait/retry 3/1/1; of which kill → leader key expired med 2.50s |",
		"| 0.20 s | 0.40 s | 0.60 s | 3 |",
		"restarted in place 3/3",
		"| REST API OPTIONS /primary, closed loop: req/s | 90000 | 95000 | 99518 | 3 |",
		"| REST API OPTIONS /primary, closed loop: p99 | 1.00 ms | 2.09 ms | 3.00 ms | 3 |",
		"| planned switchover under load (POST /switchover): write outage | 120 ms | 150 ms | 230 ms | 12 |",
		"3000 rows acknowledged, 0 lost",
		"| SomethingNew: s_outage | 1.5 | 1.5 | 1.5 | 1 |",
		"FAILED (1): go test -bench Y ./test/",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
