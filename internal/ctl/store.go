package ctl

import (
	"context"
	"fmt"
	"time"

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

// etcdStore is the store over dcs's session-less client; clusterName picks
// the base path under the configured namespace.
type etcdStore struct {
	client    *dcs.Client
	namespace string
}

// openEtcd connects to etcd with the target's endpoints, TLS and credentials.
// The endpoints are used as given (no member discovery): a CLI run is short.
func openEtcd(t etcdTarget) (store, error) {
	c, err := dcs.OpenClient(dcs.Config{
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
	return &etcdStore{client: c, namespace: t.namespace}, nil
}

func (s *etcdStore) ReadView(ctx context.Context, clusterName string) (cluster.View, error) {
	return s.client.ReadView(ctx, dcs.BasePath(s.namespace, clusterName))
}

func (s *etcdStore) SetConfig(ctx context.Context, clusterName string, raw []byte, rev int64) (bool, error) {
	return s.client.SetConfig(ctx, dcs.BasePath(s.namespace, clusterName), raw, rev)
}

func (s *etcdStore) SetFailover(ctx context.Context, clusterName string, f cluster.Failover) error {
	return s.client.SetFailover(ctx, dcs.BasePath(s.namespace, clusterName), f)
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
