package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// netClient talks to the demo's etcd, REST APIs and postgres. In netns mode its
// connections are opened from the client namespace, so the host needs no route
// into the demo subnet.
type netClient struct {
	s    *State
	ns   string // /run/netns/<client ns>, or "" to dial from here
	http *http.Client
}

func newNetClient(s *State) *netClient {
	c := &netClient{s: s}
	if s.ClientNS != "" {
		c.ns = "/run/netns/" + s.ClientNS
	}
	c.http = &http.Client{
		Timeout:   900 * time.Millisecond,
		Transport: &http.Transport{DialContext: c.dial, DisableKeepAlives: true},
	}
	return c
}

// dial opens a connection; in netns mode on a thread switched into the client
// namespace. That thread stays locked and is discarded when the goroutine ends.
func (c *netClient) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if c.ns == "" {
		return d.DialContext(ctx, network, addr)
	}
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		fd, err := unix.Open(c.ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: fmt.Errorf("open %s: %w", c.ns, err)}
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			done <- result{err: fmt.Errorf("enter %s: %w", c.ns, err)}
			return
		}
		conn, err := d.DialContext(ctx, network, addr)
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}

// get fetches url; code 0 when unreachable.
func (c *netClient) get(ctx context.Context, url string) (int, []byte) {
	return c.do(ctx, http.MethodGet, url, nil)
}

func (c *netClient) do(ctx context.Context, method, url string, body []byte) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

// getJSON fetches a REST document into v.
func (c *netClient) getJSON(ctx context.Context, url string, v any) bool {
	code, b := c.get(ctx, url)
	return code == 200 && json.Unmarshal(b, v) == nil
}

// etcdGet reads one key through etcd's JSON gateway; ok is false when absent or unreachable.
func (c *netClient) etcdGet(ctx context.Context, key string) (value string, ok bool) {
	body, _ := json.Marshal(map[string]string{"key": base64.StdEncoding.EncodeToString([]byte(key))})
	code, b := c.do(ctx, http.MethodPost, "http://"+c.s.EtcdAddr+"/v3/kv/range", body)
	if code != 200 {
		return "", false
	}
	var resp struct {
		Kvs []struct {
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if json.Unmarshal(b, &resp) != nil || len(resp.Kvs) == 0 {
		return "", false
	}
	v, err := base64.StdEncoding.DecodeString(resp.Kvs[0].Value)
	if err != nil {
		return "", false
	}
	return string(v), true
}

// pgInRecovery connects to host:port as the superuser and asks pg_is_in_recovery();
// it returns the server's data directory too, which names the node that answered.
func (c *netClient) pgInRecovery(ctx context.Context, host string, port int) (inRecovery bool, dataDir string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable connect_timeout=2",
		host, port, superuser))
	if err != nil {
		return false, "", fmt.Errorf("dsn: %w", err)
	}
	cfg.Password = c.s.Password
	cfg.DialFunc = c.dial
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, "", fmt.Errorf("connect %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, "select pg_is_in_recovery(), current_setting('data_directory')").Scan(&inRecovery, &dataDir); err != nil {
		return false, "", fmt.Errorf("query: %w", err)
	}
	return inRecovery, dataDir, nil
}
