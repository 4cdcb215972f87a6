package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/dcs"
)

// etcdTimeout bounds every etcd request (Patroni's default retry_timeout).
const etcdTimeout = 10 * time.Second

// store is the DCS as pgnodectl uses it: linearizable reads, and the two keys
// it writes itself (config by edit-config, failover when the REST API is unreachable).
type store interface {
	// ReadView reads every key of the cluster in one request.
	ReadView(ctx context.Context, clusterName string) (cluster.View, error)
	// SetConfig writes the config key if its mod revision is still rev (0: if absent).
	SetConfig(ctx context.Context, clusterName string, raw []byte, rev int64) (bool, error)
	// SetFailover writes the failover key unconditionally.
	SetFailover(ctx context.Context, clusterName string, f cluster.Failover) error
	Close() error
}

// etcdStore is the store over a clientv3 connection.
type etcdStore struct {
	client *clientv3.Client
	t      etcdTarget
}

// openEtcd connects to etcd with the target's endpoints, TLS and credentials.
// The endpoints are used as given (no member discovery): a CLI run is short.
func openEtcd(t etcdTarget) (store, error) {
	c, err := dcs.NewClient(dcs.Config{
		Endpoints:    t.endpoints,
		Username:     t.username,
		Password:     t.password,
		TLS:          t.tls,
		UseProxies:   true,
		RetryTimeout: etcdTimeout,
	})
	if err != nil {
		return nil, err
	}
	return &etcdStore{client: c, t: t}, nil
}

func (s *etcdStore) ReadView(ctx context.Context, clusterName string) (cluster.View, error) {
	ctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	return dcs.ReadView(ctx, s.client, s.t.basePath(clusterName))
}

func (s *etcdStore) SetConfig(ctx context.Context, clusterName string, raw []byte, rev int64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	key := s.t.basePath(clusterName) + "/config"
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	if rev == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	resp, err := s.client.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(raw))).Commit()
	if err != nil {
		return false, fmt.Errorf("write %s: %w", key, err)
	}
	return resp.Succeeded, nil
}

func (s *etcdStore) SetFailover(ctx context.Context, clusterName string, f cluster.Failover) error {
	ctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	key := s.t.basePath(clusterName) + "/failover"
	val, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if _, err := s.client.Put(ctx, key, string(val)); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func (s *etcdStore) Close() error { return s.client.Close() }

// view reads a cluster through the store.
func (a *app) view(ctx context.Context, clusterName string) (cluster.View, error) {
	st, err := a.store()
	if err != nil {
		return cluster.View{}, err
	}
	v, err := st.ReadView(ctx, clusterName)
	if err != nil {
		return cluster.View{}, fmt.Errorf("read cluster %s from etcd: %w", clusterName, err)
	}
	return v, nil
}
