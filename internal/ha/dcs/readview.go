package dcs

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// ReadView reads the cluster under basePath ("/<namespace>/<scope>") with one
// linearizable range request, as patronictl does: no lease, no watch.
func ReadView(ctx context.Context, client *clientv3.Client, basePath string) (cluster.View, error) {
	prefix := strings.TrimSuffix(basePath, "/") + "/"
	sent := time.Now()
	resp, err := client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return cluster.View{}, fmt.Errorf("dcs: read %s: %w", prefix, err)
	}
	entries := make(map[string]entry, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		entries[strings.TrimPrefix(string(kv.Key), prefix)] = entry{value: kv.Value, modRev: kv.ModRevision, lease: kv.Lease}
	}
	v := buildView(entries)
	v.Revision = resp.Header.Revision
	v.ReadAt = sent
	return v, nil
}
