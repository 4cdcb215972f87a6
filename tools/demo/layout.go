package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgnoded/pgnoded/internal/ha/dcs"
)

// Names every run uses; a demo owns everything that carries them.
const (
	nsPrefix   = "pgdemo-"           // network namespaces: pgdemo-n1, pgdemo-etcd, pgdemo-client, pgdemo-sw
	dirPrefix  = "pgnoded-demo-"     // work dirs: $TMPDIR/pgnoded-demo-<pid>
	scope      = "pgdemo"            // cluster name
	dcsRoot    = "/service/"         // Patroni's default namespace
	stateFile  = "state.json"        // the layout of a run, read by the helper subcommands
	ifname     = "eth0"              // each namespace's link to the bridge
	superuser  = "postgres"          // the user psql connects as
	defaultNet = "10.213.0.0/24"     // the demo subnet, inside the namespaces only
	clientNS   = nsPrefix + "client" // where psql and pgnodectl run in netns mode
	switchNS   = nsPrefix + "sw"     // holds the bridge
	etcdNS     = nsPrefix + "etcd"   // holds etcd
)

// Mode is how the demo isolates its nodes.
type Mode string

// The two modes.
const (
	ModeNetns    Mode = "netns"    // one network namespace per node, a bridge and a VIP
	ModeLoopback Mode = "loopback" // loopback ports, no VIP
)

// NodeInfo is where one node lives.
type NodeInfo struct {
	Name       string `json:"name"`
	NS         string `json:"ns,omitempty"` // network namespace; empty in loopback mode
	IP         string `json:"ip"`
	PGPort     int    `json:"pg_port"`
	APIPort    int    `json:"api_port"`
	MetricPort int    `json:"metric_port"`
	Dir        string `json:"dir"`
}

// Config is the node's pgnoded configuration file.
func (n NodeInfo) Config() string { return filepath.Join(n.Dir, "pgnoded.yml") }

// Log is pgnoded's log file.
func (n NodeInfo) Log() string { return filepath.Join(n.Dir, "pgnoded.log") }

// PIDFile holds pgnoded's pid.
func (n NodeInfo) PIDFile() string { return filepath.Join(n.Dir, "pgnoded.pid") }

// DataDir is postgres's data directory.
func (n NodeInfo) DataDir() string { return filepath.Join(n.Dir, "data") }

// APIAddr is host:port of the REST API.
func (n NodeInfo) APIAddr() string { return net.JoinHostPort(n.IP, strconv.Itoa(n.APIPort)) }

// State is the layout of one run, saved as state.json in the work dir.
type State struct {
	Mode      Mode       `json:"mode"`
	OwnerPID  int        `json:"owner_pid"`
	WorkDir   string     `json:"work_dir"`
	Subnet    string     `json:"subnet,omitempty"`
	VIP       string     `json:"vip,omitempty"` // address without prefix length
	VIPPrefix int        `json:"vip_prefix,omitempty"`
	ClientNS  string     `json:"client_ns,omitempty"`
	EtcdNS    string     `json:"etcd_ns,omitempty"`
	EtcdAddr  string     `json:"etcd_addr"` // host:port of the client URL
	EtcdPeer  string     `json:"etcd_peer"` // host:port of the peer URL
	Password  string     `json:"password"`  // postgres superuser password
	Bins      Bins       `json:"bins"`
	Nodes     []NodeInfo `json:"nodes"`
	Namespace []string   `json:"namespaces,omitempty"` // every namespace this run made
}

// Bins are the programs the demo runs.
type Bins struct {
	Pgnoded   string `json:"pgnoded"`
	Pgnodectl string `json:"pgnodectl"`
	Etcd      string `json:"etcd"`
	Demo      string `json:"demo"`
	PGBin     string `json:"pg_bin"`
}

// EtcdDir is etcd's directory in the work dir.
func (s *State) EtcdDir() string { return filepath.Join(s.WorkDir, "etcd") }

// LeaderKey is the etcd key holding the leader's name.
func (s *State) LeaderKey() string { return dcs.BasePath(dcsRoot, scope) + "/" + dcs.KeyLeader }

// Node returns the node called name.
func (s *State) Node(name string) (NodeInfo, bool) {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return NodeInfo{}, false
}

// newState lays out a run in workDir: addresses from subnet in netns mode, free loopback ports otherwise.
func newState(mode Mode, workDir string, subnet netip.Prefix, bins Bins) (*State, error) {
	pw, err := password()
	if err != nil {
		return nil, err
	}
	s := &State{Mode: mode, OwnerPID: os.Getpid(), WorkDir: workDir, Password: pw, Bins: bins}
	if mode == ModeNetns {
		host := func(h byte) string {
			b := subnet.Addr().As4()
			b[3] = h
			return netip.AddrFrom4(b).String()
		}
		s.Subnet = subnet.String()
		s.VIP, s.VIPPrefix = host(100), subnet.Bits()
		s.ClientNS, s.EtcdNS = clientNS, etcdNS
		s.EtcdAddr, s.EtcdPeer = net.JoinHostPort(host(10), "2379"), "127.0.0.1:2380"
		for i := 1; i <= 3; i++ {
			name := fmt.Sprintf("n%d", i)
			s.Nodes = append(s.Nodes, NodeInfo{Name: name, NS: nsPrefix + name, IP: host(byte(10 + i)),
				PGPort: 5432, APIPort: 8008, MetricPort: 9630, Dir: filepath.Join(workDir, name)})
		}
		s.Namespace = []string{switchNS, etcdNS, clientNS, nsPrefix + "n1", nsPrefix + "n2", nsPrefix + "n3"}
		return s, nil
	}
	ports, err := freePorts(11)
	if err != nil {
		return nil, err
	}
	s.EtcdAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	s.EtcdPeer = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	for i := 1; i <= 3; i++ {
		p := ports[2+3*(i-1):]
		s.Nodes = append(s.Nodes, NodeInfo{Name: fmt.Sprintf("n%d", i), IP: "127.0.0.1",
			PGPort: p[0], APIPort: p[1], MetricPort: p[2], Dir: filepath.Join(workDir, fmt.Sprintf("n%d", i))})
	}
	return s, nil
}

// password is a fresh superuser password (the loopback ports are reachable by every local user).
func password() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	return "demo-" + hex.EncodeToString(b), nil
}

// freePorts returns n distinct free loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// save writes state.json.
func (s *State) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.WorkDir, stateFile), b, 0o644); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// loadState reads state.json of workDir.
func loadState(workDir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(workDir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("read demo state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Join(workDir, stateFile), err)
	}
	return &s, nil
}

// workDirs lists $TMPDIR/pgnoded-demo-<pid> directories with the pid in their name.
func workDirs() map[string]int {
	out := map[string]int{}
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, m := range matches {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(m), dirPrefix))
		if err == nil && pid > 0 {
			out[m] = pid
		}
	}
	return out
}

// findRunning locates the state of the demo running now (for the helper subcommands).
func findRunning(explicit string) (*State, error) {
	if explicit != "" {
		return loadState(explicit)
	}
	var found []string
	for dir, pid := range workDirs() {
		if isDemoProcess(pid) {
			found = append(found, dir)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no running demo found under %s (start one with `make demo`)", os.TempDir())
	case 1:
		return loadState(found[0])
	default:
		return nil, fmt.Errorf("several demos are running (%s); choose one with --workdir", strings.Join(found, ", "))
	}
}
