package cluster

import (
	"fmt"
	"strings"
)

// StandbyCluster is the dynamic standby_cluster section (Patroni's
// docs/standby_cluster.rst): the remote primary this cluster replicates from.
// The node holding the leader key is the standby leader; it streams from
// Host:Port and never promotes while the section is active.
type StandbyCluster struct {
	Host                  string   // one host, or several separated by commas
	Port                  int      // 0: libpq's default
	PrimarySlotName       string   // slot on the remote primary; "" streams without one
	CreateReplicaMethods  []string // how the standby leader is created: basebackup or postgresql.<name> sections
	RestoreCommand        string
	ArchiveCleanupCommand string
	RecoveryMinApplyDelay string // as written (e.g. "5min" or 300000)

	badPort bool // a port was written but is not one: the section stays active
}

// Active reports a section that makes this a standby cluster: host, port or
// restore_command set (Patroni's utils.is_standby_cluster).
func (s *StandbyCluster) Active() bool {
	return s != nil && (s.Host != "" || s.Port != 0 || s.badPort || s.RestoreCommand != "")
}

// MultiHost reports a host list (the standby leader then asks for a read-write server).
func (s *StandbyCluster) MultiHost() bool { return s != nil && strings.Contains(s.Host, ",") }

// Addr is host:port for logs and messages.
func (s *StandbyCluster) Addr() string {
	if s == nil {
		return ""
	}
	if s.Port == 0 {
		return s.Host
	}
	return fmt.Sprintf("%s:%d", s.Host, s.Port)
}

// parseStandbyCluster reads raw["standby_cluster"]; nil when absent or not a
// mapping. With an error the section is still returned, and still active when
// it was written with a port.
func parseStandbyCluster(raw map[string]any) (*StandbyCluster, error) {
	m, ok := raw["standby_cluster"].(map[string]any)
	if !ok {
		return nil, nil
	}
	s := &StandbyCluster{}
	str := func(k string) string {
		v, ok := m[k]
		if !ok || v == nil {
			return ""
		}
		return strings.TrimSpace(fmt.Sprint(v))
	}
	s.Host = str("host")
	var err error
	if p := str("port"); p != "" {
		// A bad port keeps the section (and the cluster a standby cluster):
		// dropping it would promote the standby leader over a typo.
		if n, perr := ParseInt(p); perr != nil || n < 0 || n > 65535 {
			err = fmt.Errorf("standby_cluster.port: not a port: %q", p)
			s.badPort = true
		} else {
			s.Port = int(n)
		}
	}
	s.PrimarySlotName = str("primary_slot_name")
	s.RestoreCommand = str("restore_command")
	s.ArchiveCleanupCommand = str("archive_cleanup_command")
	s.RecoveryMinApplyDelay = str("recovery_min_apply_delay")
	if l, ok := m["create_replica_methods"].([]any); ok {
		for _, v := range l {
			s.CreateReplicaMethods = append(s.CreateReplicaMethods, fmt.Sprint(v))
		}
	}
	return s, err
}
