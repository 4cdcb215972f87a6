//go:build integration

package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// HAProxy is a real haproxy process in front of a test cluster, configured the way
// Pigsty renders its default services (Pigsty's docs: PGSQL services; the
// haproxy service template of its pgsql role: OPTIONS checks on :8008).
type HAProxy struct {
	t       testing.TB
	Dir     string
	Ports   map[string]int // service name -> frontend port on 127.0.0.1
	sock    string
	logPath string
}

// haService is one Pigsty service: a listen block with an OPTIONS health check.
type haService struct {
	Name, Check string
	Port        int
	Servers     []haServer
}

type haServer struct {
	Name            string
	PGPort, APIPort int
	Backup          bool
}

// The check timing is faster than Pigsty's (norm: inter 2s fastinter 1s downinter 2s
// rise 3 fall 3; fast: 1s/0.5s/1s/3/3) to keep the test short; every other setting is
// Pigsty's service template and haproxy.cfg defaults, except the global maxconn: Pigsty's
// 65535 needs ~131k file descriptors, above this machine's hard limit of 20000 (no
// CAP_SYS_RESOURCE). nbthread 1 only spares the shared 2-core test machine.
var haproxyTmpl = template.Must(template.New("haproxy").Parse(`global
    maxconn 8000
    nbthread 1
    stats socket {{.Sock}} mode 600 level admin
    stats timeout 10s

defaults
    mode tcp
    retries 3
    timeout queue 3s
    timeout connect 3s
    timeout check 3s
    timeout client 24h
    timeout server 24h
{{range .Services}}
listen {{.Name}}
    bind 127.0.0.1:{{.Port}}
    mode tcp
    maxconn 5000
    balance roundrobin
    option httpchk
    option http-keep-alive
    http-check send meth OPTIONS uri {{.Check}}
    http-check expect status 200
    default-server inter 1s fastinter 500ms downinter 1s rise 2 fall 2 on-marked-down shutdown-sessions slowstart 30s maxconn 3000 maxqueue 128 weight 100
{{- range .Servers}}
    server {{.Name}} 127.0.0.1:{{.PGPort}} check port {{.APIPort}} weight 100{{if .Backup}} backup{{end}}
{{- end}}
{{end}}`))

// haproxyBinary finds haproxy, installing the Debian package through scripts/ensure-deps.sh when missing.
func haproxyBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	out, err := exec.Command("bash", "../scripts/ensure-deps.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("installing haproxy: %v\n%s", err, out)
	}
	p, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatalf("haproxy still missing after scripts/ensure-deps.sh: %v\n%s", err, out)
	}
	return p
}

// StartHAProxy runs haproxy in the foreground with Pigsty's three default services in
// front of c: primary (/primary), replica (/read-only, inventory primary as backup) and
// offline (/replica). inventoryPrimary is the node deployed as pg_role=primary; like in
// Pigsty the backup flag stays on it after a failover.
func StartHAProxy(t testing.TB, c *Cluster, inventoryPrimary *Node) *HAProxy {
	t.Helper()
	bin := haproxyBinary(t)
	h := &HAProxy{t: t, Dir: t.TempDir(), Ports: map[string]int{}}
	h.sock = filepath.Join(h.Dir, "haproxy.sock")
	h.logPath = filepath.Join(h.Dir, "haproxy.log")
	servers := func(backupPrimary bool) []haServer {
		var out []haServer
		for _, n := range c.Nodes {
			out = append(out, haServer{Name: n.Name, PGPort: n.PGPort, APIPort: n.APIPort,
				Backup: backupPrimary && n == inventoryPrimary})
		}
		return out
	}
	// Pigsty's offline service selects pg_role=offline members (none here) with the
	// replicas as backups; listing every member without backups checks the same /replica rule.
	services := []haService{
		{Name: "primary", Check: "/primary", Servers: servers(false)},
		{Name: "replica", Check: "/read-only", Servers: servers(true)},
		{Name: "offline", Check: "/replica", Servers: servers(false)},
	}
	for i := range services {
		services[i].Port = testenv.FreePort(t)
		h.Ports[services[i].Name] = services[i].Port
	}
	var buf bytes.Buffer
	if err := haproxyTmpl.Execute(&buf, map[string]any{"Sock": h.sock, "Services": services}); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(h.Dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c rejected the config: %v\n%s\n%s", err, out, buf.String())
	}
	startHostProc(t, "haproxy", h.logPath, 4000, bin, "-f", cfg, "-db")
	WaitFor(t, 15*time.Second, "haproxy stats socket", func() bool {
		_, err := h.command("show info")
		return err == nil
	})
	return h
}

// command sends one command to the stats socket and returns the whole answer.
func (h *HAProxy) command(cmd string) (string, error) {
	conn, err := net.DialTimeout("unix", h.sock, time.Second)
	if err != nil {
		return "", fmt.Errorf("dial haproxy stats socket: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("send %q: %w", cmd, err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("read answer to %q: %w", cmd, err)
	}
	return string(b), nil
}

// ServerStates returns HAProxy's view from `show stat`: service -> server -> status,
// with " (backup)" appended for backup servers, e.g. "UP", "DOWN", "UP 1/2", "UP (backup)".
func (h *HAProxy) ServerStates() (map[string]map[string]string, error) {
	out, err := h.command("show stat")
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	col := map[string]int{}
	states := map[string]map[string]string{}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# ") {
			for i, name := range strings.Split(strings.TrimPrefix(line, "# "), ",") {
				col[name] = i
			}
			continue
		}
		f := strings.Split(line, ",")
		if len(col) == 0 || len(f) <= col["bck"] || len(f) <= col["status"] {
			continue
		}
		px, sv := f[col["pxname"]], f[col["svname"]]
		if sv == "FRONTEND" || sv == "BACKEND" {
			continue
		}
		st := f[col["status"]]
		if f[col["bck"]] == "1" {
			st += " (backup)"
		}
		if states[px] == nil {
			states[px] = map[string]string{}
		}
		states[px][sv] = st
	}
	if len(states) == 0 {
		return nil, fmt.Errorf("show stat returned no servers: %q", tail([]byte(out), 500))
	}
	return states, nil
}

// WaitStates polls the stats socket until HAProxy's view equals want exactly.
func (h *HAProxy) WaitStates(timeout time.Duration, what string, want map[string]map[string]string) map[string]map[string]string {
	h.t.Helper()
	var got map[string]map[string]string
	if pollFor(timeout, func() bool {
		var err error
		got, err = h.ServerStates()
		return err == nil && fmt.Sprint(got) == fmt.Sprint(want)
	}) {
		return got
	}
	h.t.Fatalf("timed out after %v waiting for HAProxy view %s:\n got  %v\n want %v", timeout, what, got, want)
	return nil
}

// Landing is where one client connection through an HAProxy port ended up.
type Landing struct {
	At         time.Time
	InRecovery bool
	Port       int // inet_server_port() of the postgres that answered
}

// Land opens one connection through the service's frontend port and asks the server who it is.
func (h *HAProxy) Land(ctx context.Context, service string) (Landing, error) {
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=postgres connect_timeout=2 sslmode=disable",
		h.Ports[service], superPassword)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return Landing{}, fmt.Errorf("connect through %s: %w", service, err)
	}
	defer conn.Close(context.Background())
	var l Landing
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), inet_server_port()").Scan(&l.InRecovery, &l.Port); err != nil {
		return Landing{}, fmt.Errorf("query through %s: %w", service, err)
	}
	l.At = time.Now()
	return l, nil
}

// formatStates renders HAProxy's view one service per line, servers sorted.
func formatStates(states map[string]map[string]string) string {
	var svcs []string
	for s := range states {
		svcs = append(svcs, s)
	}
	sort.Strings(svcs)
	var b strings.Builder
	for _, s := range svcs {
		var names []string
		for n := range states[s] {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(&b, "\n  %-8s", s)
		for _, n := range names {
			fmt.Fprintf(&b, " %s=%s;", n, states[s][n])
		}
	}
	return b.String()
}
