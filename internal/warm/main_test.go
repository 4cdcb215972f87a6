package warm
import (
 _ "go.etcd.io/etcd/server/v3/embed"
 _ "go.etcd.io/etcd/client/v3"
 _ "github.com/jackc/pgx/v5"
 _ "github.com/vishvananda/netlink"
 _ "github.com/mdlayher/arp"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/go-chi/chi/v5"
 _ "go.yaml.in/yaml/v3"
 _ "github.com/coreos/go-systemd/v22/daemon"
 _ "golang.org/x/sync/errgroup"
 _ "go.uber.org/goleak"
 _ "github.com/mdlayher/ndp"
 _ "github.com/prometheus/client_golang/prometheus/testutil"
)
