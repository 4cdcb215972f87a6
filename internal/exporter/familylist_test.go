package exporter

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestReadFamilyList(t *testing.T) {
	list, err := ReadFamilyList(strings.NewReader("# header\n\npg_up gauge -\npg_xact_age_seconds histogram datname\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []ListedFamily{{"pg_up", "gauge", ""}, {"pg_xact_age_seconds", "histogram", "datname"}}
	if !slices.Equal(list, want) {
		t.Fatalf("got %v, want %v", list, want)
	}
	if got := list[1].SeriesNames(); !slices.Equal(got, []string{"pg_xact_age_seconds_bucket", "pg_xact_age_seconds_count", "pg_xact_age_seconds_sum"}) {
		t.Errorf("histogram series names %v", got)
	}
	if _, err := ReadFamilyList(strings.NewReader("pg_up gauge\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("short row: err = %v, want one naming line 1", err)
	}
	for _, role := range []string{"primary", "replica"} {
		f, err := os.Open("testdata/golden_pg15_" + role + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		list, err := ReadFamilyList(f)
		f.Close()
		if err != nil || len(list) < 200 {
			t.Errorf("%s golden list: %d families, err %v", role, len(list), err)
		}
	}
}
