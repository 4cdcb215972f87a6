package benchraw

import (
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	var other []string
	raw, err := Read(strings.NewReader(`### CMD: go test -bench X ./test/
BenchmarkB-2   10   5 ns/op   7.5 req/s
  SUMMARY line
BenchmarkA-2   10   6 ns/op
BenchmarkB-2   10   4 ns/op   x req/s
### FAILED (1): go test -bench Y ./test/
`), func(line string) { other = append(other, line) })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(raw.Commands, "|") != "go test -bench X ./test/" || strings.Join(raw.Failed, "|") != "FAILED (1): go test -bench Y ./test/" {
		t.Errorf("markers: %q %q", raw.Commands, raw.Failed)
	}
	if strings.Join(raw.Order, ",") != "BenchmarkB,BenchmarkA" {
		t.Errorf("order %q", raw.Order)
	}
	if got := raw.Metrics["BenchmarkB"]; len(got["ns/op"]) != 2 || len(got["req/s"]) != 1 || got["req/s"][0] != 7.5 {
		t.Errorf("BenchmarkB metrics %v", got)
	}
	if strings.Join(other, "|") != "SUMMARY line" {
		t.Errorf("other lines %q", other)
	}
}

func TestParseSpread(t *testing.T) {
	if lo, med, hi, ok := ParseSpread("min 2.10s med -2.50s max 3s"); !ok || lo != 2.1 || med != -2.5 || hi != 3 {
		t.Errorf("ParseSpread = %v %v %v %v", lo, med, hi, ok)
	}
	if _, _, _, ok := ParseSpread("n/a"); ok {
		t.Error("n/a is not a spread")
	}
}
