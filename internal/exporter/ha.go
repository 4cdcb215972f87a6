package exporter

import (
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/prometheus/client_golang/prometheus"
)

// pgnoded's HA state, under Prometheus naming (base units, _total on counters).
var (
	descRole           = prometheus.NewDesc("pgnoded_role", "The node's HA role: 1 for the current role, 0 for the others.", []string{"role"}, nil)
	descLeader         = prometheus.NewDesc("pgnoded_leader", "Whether this node holds the leader key (1) or not (0).", nil, nil)
	descLeaseRemaining = prometheus.NewDesc("pgnoded_lease_remaining_seconds", "Seconds until this node's hold on the leader key expires unless renewed; 0 when not the leader.", nil, nil)
	descDCSLastSeen    = prometheus.NewDesc("pgnoded_dcs_last_seen_timestamp_seconds", "Unix time of the last successful read of the DCS; 0 if never.", nil, nil)
	descVIPBound       = prometheus.NewDesc("pgnoded_vip_bound", "Whether the VIP is bound on this node (1) or not (0).", nil, nil)
	descFailsafe       = prometheus.NewDesc("pgnoded_failsafe_active", "Whether failsafe mode keeps this node primary without the DCS (1) or not (0).", nil, nil)
	descFailovers      = prometheus.NewDesc("pgnoded_failovers_total", "Failovers this node won (unplanned promotions after the leader key expired).", nil, nil)
	descSwitchovers    = prometheus.NewDesc("pgnoded_switchovers_total", "Planned switchovers this node took part in.", nil, nil)
	descPromotions     = prometheus.NewDesc("pgnoded_promotions_total", "Promotions of the local postgres.", nil, nil)
	descDemotions      = prometheus.NewDesc("pgnoded_demotions_total", "Demotions of the local postgres.", nil, nil)
	descRenewFailures  = prometheus.NewDesc("pgnoded_lease_renew_failures_total", "Failed renewals of the leader key.", nil, nil)
	descVIPFailures    = prometheus.NewDesc("pgnoded_vip_failures_total", "Failed attempts to bind or release the VIP (missing capability, no interface).", nil, nil)
	descPeerErrors     = prometheus.NewDesc("pgnoded_peer_errors_total", "Failed requests to other members' REST APIs (leader race, failsafe), by reason.", []string{"reason"}, nil)
	descCallbackRuns   = prometheus.NewDesc("pgnoded_callback_runs_total", "Runs of postgresql.callbacks, pre_promote and before_stop by callback and exit (an exit status, killed or error).", []string{"callback", "exit"}, nil)
	descLastFailover   = prometheus.NewDesc("pgnoded_last_failover_seconds", "Duration of the phases of the last failover this node won.", []string{"phase"}, nil)
	descSyncStandbys   = prometheus.NewDesc("pgnoded_sync_standbys", "Standbys the sync key lists while this node leads in synchronous mode (quorum standbys under synchronous_mode: quorum); 0 on the other members.", nil, nil)
	descConfigRefused  = prometheus.NewDesc("pgnoded_config_refused", "1 for each setting of the config key pgnoded refuses (docs/config-keys.md); while any is 1 the node takes no leadership.", []string{"key"}, nil)
)

// haRoles are reported in every scrape so that a role change flips series
// rather than making them appear and vanish.
var haRoles = []cluster.Role{
	cluster.RolePrimary, cluster.RoleReplica, cluster.RoleStandbyLeader,
	cluster.RoleDemoted, cluster.RoleUninitialized, cluster.RolePromoted,
}

// peerErrorReasons are reported in every scrape (0 until one happens), as
// internal/peers names them.
var peerErrorReasons = []string{"unauthorized", "forbidden", "tls", "timeout", "connect", "bad_response"}

// haCollector turns the HA loop's published snapshot into metrics; it never
// blocks (the snapshot is a pointer the HA loop swaps).
type haCollector struct {
	snap func() *cluster.Snapshot
	now  func() time.Time
}

func (h *haCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRole, descLeader, descLeaseRemaining, descDCSLastSeen,
		descVIPBound, descFailsafe, descFailovers, descSwitchovers, descPromotions, descDemotions,
		descRenewFailures, descVIPFailures, descPeerErrors, descLastFailover, descCallbackRuns, descConfigRefused, descSyncStandbys} {
		ch <- d
	}
}

// Collect emits nothing until the HA loop has published a snapshot.
func (h *haCollector) Collect(ch chan<- prometheus.Metric) {
	if h.snap == nil {
		return
	}
	s := h.snap()
	if s == nil {
		return
	}
	now := h.now()
	for _, r := range haRoles {
		ch <- gauge(descRole, b2f(s.Role == r), string(r))
	}
	leader := s.IsLeader(now)
	ch <- gauge(descLeader, b2f(leader))
	remaining := 0.0
	if leader {
		remaining = s.LeaderUntil.Sub(now).Seconds()
	}
	ch <- gauge(descLeaseRemaining, remaining)
	seen := 0.0
	if !s.View.ReadAt.IsZero() {
		seen = float64(s.View.ReadAt.UnixNano()) / 1e9
	}
	ch <- gauge(descDCSLastSeen, seen)
	ch <- gauge(descVIPBound, b2f(s.VIPBound))
	ch <- gauge(descFailsafe, b2f(s.FailsafeActive))
	ch <- gauge(descSyncStandbys, float64(syncStandbys(s, leader)))
	for _, k := range s.ConfigRefused {
		ch <- gauge(descConfigRefused, 1, k.Key)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descFailovers, s.Counters.Failovers)
	counter(descSwitchovers, s.Counters.Switchovers)
	counter(descPromotions, s.Counters.Promotions)
	counter(descDemotions, s.Counters.Demotions)
	counter(descRenewFailures, s.Counters.LeaseRenewFails)
	counter(descVIPFailures, s.Counters.VIPFailures)
	for _, r := range peerErrorReasons {
		ch <- prometheus.MustNewConstMetric(descPeerErrors, prometheus.CounterValue, float64(s.Counters.PeerErrors[r]), r)
	}
	for k, v := range s.Counters.CallbackRuns {
		ch <- prometheus.MustNewConstMetric(descCallbackRuns, prometheus.CounterValue, float64(v), k.Callback, k.Exit)
	}
	lf := s.Counters.LastFailover
	ch <- gauge(descLastFailover, lf.Detection.Seconds(), "detection")
	ch <- gauge(descLastFailover, lf.Promotion.Seconds(), "promotion")
	ch <- gauge(descLastFailover, lf.VIPMove.Seconds(), "vip")
}

// syncStandbys is the number of standbys in the sync key when this node
// leads in synchronous mode and the key names it as the leader; else 0.
func syncStandbys(s *cluster.Snapshot, leader bool) int {
	sync := s.View.Sync
	if !leader || !s.Config.SynchronousMode || sync == nil || sync.Leader != s.Name {
		return 0
	}
	return len(sync.Standbys())
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
