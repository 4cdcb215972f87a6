package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// patroniKeys are the keys of a healthy 3.0.2 cluster as Patroni writes them.
var patroniKeys = map[string]string{
	"initialize":        "7300000000000000001",
	"config":            `{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100,"hot_standby":"on"}}}`,
	"history":           `[[1,25165984,"no recovery target specified","2024-05-01T10:00:00.123456+00:00","pg-test-1"]]`,
	"status":            `{"optime":104857600,"slots":{"pg_test_2":104857600}}`,
	"sync":              `{"leader":"pg-test-1","sync_standby":null}`,
	"failover":          `{}`,
	"members/pg-test-1": `{"conn_url":"postgres://10.10.10.11:5432/postgres","api_url":"http://10.10.10.11:8008/patroni","state":"running","role":"master","version":"3.0.2","xlog_location":104857600,"timeline":2}`,
	"members/pg-test-2": `{"conn_url":"postgres://10.10.10.12:5432/postgres","api_url":"http://10.10.10.12:8008/patroni","state":"running","role":"replica","version":"3.0.2","xlog_location":101711872,"timeline":2}`,
	"members/pg-test-3": `{"conn_url":"postgres://10.10.10.13:5432/postgres","api_url":"http://10.10.10.13:8008/patroni","state":"running","role":"replica","version":"3.0.2","timeline":2,"tags":{"nofailover":true}}`,
}

// seedCluster writes the keys under /<ns>/<scope>/; leader and members sit on a lease, as Patroni's do.
func seedCluster(t *testing.T, c *clientv3.Client, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, base+"/leader", "pg-test-1", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	for k, v := range patroniKeys {
		var opts []clientv3.OpOption
		if strings.HasPrefix(k, "members/") {
			opts = append(opts, clientv3.WithLease(lease.ID))
		}
		if _, err := c.Put(ctx, base+"/"+k, v, opts...); err != nil {
			t.Fatal(err)
		}
	}
}

func getKey(t *testing.T, c *clientv3.Client, key string) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].ModRevision
}

func TestAgainstEtcd(t *testing.T) {
	e := testenv.StartEtcd(t)
	c := e.Client()
	ns := fmt.Sprintf("/ctltest%d", os.Getpid())
	base := ns + "/pg-test"
	seedCluster(t, c, base)
	cfg := filepath.Join(t.TempDir(), "pgnoded.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("scope: pg-test\nnamespace: %s\netcd3:\n  host: %s\n", ns, e.HostPort())), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("list json", func(t *testing.T) {
		r := runCtl(t, nil, "", nil, "-c", cfg, "list", "--format", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var got []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		want := []map[string]any{
			{"Cluster": "pg-test", "Member": "pg-test-1", "Host": "10.10.10.11", "Role": "Leader", "State": "running", "TL": 2.0},
			{"Cluster": "pg-test", "Member": "pg-test-2", "Host": "10.10.10.12", "Role": "Replica", "State": "running", "TL": 2.0, "Lag in MB": 3.0},
			{"Cluster": "pg-test", "Member": "pg-test-3", "Host": "10.10.10.13", "Role": "Replica", "State": "running", "TL": 2.0, "Lag in MB": "unknown", "Tags": map[string]any{"nofailover": true}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
	})
	t.Run("list and topology", func(t *testing.T) {
		r := runCtl(t, nil, "", nil, "-c", cfg, "list")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "+ Cluster: pg-test (7300000000000000001) ") {
			t.Errorf("exit %d, stderr %q, stdout:\n%s", r.code, r.stderr, r.stdout)
		}
		r = runCtl(t, nil, "", nil, "-c", cfg, "topology", "pg-test")
		if r.code != 0 || !strings.Contains(r.stdout, "| + pg-test-2 |") {
			t.Errorf("exit %d, stderr %q, stdout:\n%s", r.code, r.stderr, r.stdout)
		}
	})
	t.Run("dcs-url override", func(t *testing.T) {
		r := runCtl(t, nil, "", nil, "-d", "etcd3://"+e.HostPort()+ns, "history", "pg-test")
		if r.code != 0 || !strings.Contains(r.stdout, "|  1 | 25165984 | no recovery target specified |") {
			t.Errorf("exit %d, stderr %q, stdout:\n%s", r.code, r.stderr, r.stdout)
		}
	})
	t.Run("show-config", func(t *testing.T) {
		r := runCtl(t, nil, "", nil, "-c", cfg, "show-config")
		want := "loop_wait: 10\nmaximum_lag_on_failover: 1048576\npostgresql:\n  parameters:\n    hot_standby: 'on'\n    max_connections: 100\n  use_pg_rewind: true\nretry_timeout: 10\nttl: 30\n"
		if r.code != 0 || strings.ReplaceAll(r.stdout, `"on"`, `'on'`) != want {
			t.Errorf("exit %d, stderr %q, stdout:\n%s", r.code, r.stderr, r.stdout)
		}
	})
	t.Run("edit-config", func(t *testing.T) {
		_, rev := getKey(t, c, base+"/config")
		r := runCtl(t, nil, "", nil, "-c", cfg, "edit-config", "-s", "ttl=60", "-p", "max_connections=200", "-s", "postgresql.use_pg_rewind=null", "--force")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		val, rev2 := getKey(t, c, base+"/config")
		want := `{"loop_wait":10,"maximum_lag_on_failover":1048576,"postgresql":{"parameters":{"hot_standby":"on","max_connections":200}},"retry_timeout":10,"ttl":60}`
		if val != want || rev2 <= rev {
			t.Errorf("config key %s (rev %d -> %d)\nwant %s", val, rev, rev2, want)
		}
	})
	t.Run("edit-config conflict", func(t *testing.T) {
		// A concurrent writer (PATCH /config on a node) changes the key between
		// pgnodectl's read and its compare-and-swap write.
		open := func(tg etcdTarget) (store, error) {
			st, err := openEtcd(tg)
			if err != nil {
				return nil, err
			}
			return &racingStore{store: st, race: func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if _, err := c.Put(ctx, base+"/config", `{"ttl":45}`); err != nil {
					t.Error(err)
				}
			}}, nil
		}
		var out, errb strings.Builder
		code := Run(context.Background(), []string{"-c", cfg, "edit-config", "-s", "loop_wait=5", "--force"},
			Env{Stdout: &out, Stderr: &errb, openStore: open})
		if code != 1 || errb.String() != "pgnodectl: edit-config: Config modification aborted due to concurrent changes\n" {
			t.Errorf("exit %d, stderr %q", code, errb.String())
		}
		if val, _ := getKey(t, c, base+"/config"); val != `{"ttl":45}` {
			t.Errorf("config key %s: the concurrent write was overwritten", val)
		}
	})
	t.Run("edit-config creates a missing key", func(t *testing.T) {
		r := runCtl(t, nil, "", nil, "-c", cfg, "edit-config", "pg-new", "-s", "ttl=30", "--force")
		if val, _ := getKey(t, c, ns+"/pg-new/config"); r.code != 0 || val != `{"ttl":30}` {
			t.Errorf("exit %d, stderr %q, key %q", r.code, r.stderr, val)
		}
		r = runCtl(t, nil, "", nil, "-c", cfg, "show-config", "pg-none")
		if r.code != 1 || r.stderr != "pgnodectl: show-config: cluster pg-none has no config key in etcd\n" {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("watch stops on cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		w := &notifyWriter{n: 2, done: cancel}
		code := Run(ctx, []string{"-c", cfg, "list", "-w", "0.05"}, Env{Stdout: w, Stderr: w, Now: fixedNow})
		if code != 0 || strings.Count(w.String(), "2024-05-01 12:00:00\n+ Cluster: pg-test") < 2 {
			t.Errorf("exit %d, output:\n%s", code, w.String())
		}
	})
	t.Run("etcd down", func(t *testing.T) {
		dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var out, errb strings.Builder
		code := Run(ctx, []string{"-d", "etcd3://" + dead, "list", "pg-test"}, Env{Stdout: &out, Stderr: &errb})
		if code != 1 || !strings.HasPrefix(errb.String(), "pgnodectl: list: read cluster pg-test from etcd: ") || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("exit %d, stderr %q", code, errb.String())
		}
	})
}

// racingStore runs race just before each config write.
type racingStore struct {
	store
	race func()
}

func (r *racingStore) SetConfig(ctx context.Context, name string, raw []byte, rev int64) (bool, error) {
	r.race()
	return r.store.SetConfig(ctx, name, raw, rev)
}

// notifyWriter calls done once n tables were written.
type notifyWriter struct {
	strings.Builder
	n    int
	done func()
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	n, err := w.Builder.Write(p)
	if strings.Count(w.Builder.String(), "+ Cluster:") >= w.n {
		w.done()
	}
	return n, err
}
