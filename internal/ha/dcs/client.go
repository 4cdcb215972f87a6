package dcs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// BasePath is the prefix of a cluster's keys: "/<namespace>/<scope>", duplicate slashes collapsed.
func BasePath(namespace, scope string) string {
	return path.Clean("/" + namespace + "/" + scope)
}

// Client is a session-less connection to etcd, as patronictl uses one:
// linearizable reads of a cluster's keys and the two keys it writes itself
// (config by edit-config, failover when no REST API answers). It holds no
// lease and no watch; every request is bounded by the Config's RetryTimeout.
type Client struct {
	c       *clientv3.Client
	timeout time.Duration
}

// OpenClient connects as NewClient does; cfg's BasePath, Name and TTL are not used.
func OpenClient(cfg Config) (*Client, error) {
	cfg.setDefaults()
	c, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{c: c, timeout: cfg.RetryTimeout}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// ReadView reads the cluster under basePath with one linearizable range request.
func (c *Client) ReadView(ctx context.Context, basePath string) (cluster.View, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return readView(ctx, c.c, basePath)
}

// SetConfig writes the config key under basePath (compacted, as Store does):
// with rev > 0 only if its mod_revision is still rev, with rev == 0 only if it
// does not exist. False means the compare failed.
func (c *Client) SetConfig(ctx context.Context, basePath string, raw []byte, rev int64) (bool, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return false, fmt.Errorf("dcs: set config: not JSON: %w", err)
	}
	key := keyPath(basePath, KeyConfig)
	cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	if rev > 0 {
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.c.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, buf.String())).Commit()
	if err != nil {
		return false, fmt.Errorf("dcs: write %s: %w", key, err)
	}
	return resp.Succeeded, nil
}

// SetFailover writes the failover key under basePath unconditionally.
func (c *Client) SetFailover(ctx context.Context, basePath string, f cluster.Failover) error {
	key := keyPath(basePath, KeyFailover)
	val, err := EncodeValue(f)
	if err != nil {
		return fmt.Errorf("dcs: encode failover: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if _, err := c.c.Put(ctx, key, string(val)); err != nil {
		return fmt.Errorf("dcs: write %s: %w", key, err)
	}
	return nil
}

// keyPath is the full etcd key of rel (one of the Key constants) under basePath.
func keyPath(basePath, rel string) string {
	return strings.TrimSuffix(basePath, "/") + "/" + rel
}

// readView reads the cluster under basePath ("/<namespace>/<scope>") with one
// linearizable range request, as patronictl does: no lease, no watch.
func readView(ctx context.Context, client *clientv3.Client, basePath string) (cluster.View, error) {
	prefix := keyPath(basePath, "")
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
