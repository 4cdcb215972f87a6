package testenv

import (
	"context"
	"testing"
	"time"
)

func TestEtcdStartStopRestart(t *testing.T) {
	e := StartEtcd(t)
	c := e.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "/k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	e.Stop()
	e.Start()
	resp, err := c.Get(ctx, "/k")
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("value lost across restart: %v", resp.Kvs)
	}
}
