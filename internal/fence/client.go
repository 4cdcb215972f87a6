package fence

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultCallTimeout bounds one request (dial, write and reply), so a hung
// guard cannot stall the HA loop for longer than this per attempt.
const DefaultCallTimeout = 200 * time.Millisecond

// Client talks to a guard; it implements ha.Fence. It is safe for concurrent
// use; calls are serialised over one connection.
type Client struct {
	socket  string
	timeout time.Duration

	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to the guard listening on socketPath.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	c := &Client{socket: socketPath, timeout: DefaultCallTimeout}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Arm tells the guard postgres may run as primary until deadline; a later
// call replaces it (a deadline already passed makes the guard fence now).
func (c *Client) Arm(deadline time.Time) error {
	if deadline.IsZero() {
		return ErrZeroDeadline
	}
	// The instant is computed per attempt so a retry does not carry an old reading.
	_, err := c.do(func() string { return opArm + " " + strconv.FormatInt(bootDeadline(deadline), 10) })
	if err != nil {
		return fmt.Errorf("fence arm: %w", err)
	}
	return nil
}

// Disarm tells the guard this node is not a primary.
func (c *Client) Disarm() error {
	if _, err := c.do(func() string { return opDisarm }); err != nil {
		return fmt.Errorf("fence disarm: %w", err)
	}
	return nil
}

// Status asks the guard for its state.
func (c *Client) Status() (Status, error) {
	body, err := c.do(func() string { return opStatus })
	if err != nil {
		return Status{}, fmt.Errorf("fence status: %w", err)
	}
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return Status{}, fmt.Errorf("fence status: %w", err)
	}
	return st, nil
}

// Close closes the connection; the guard keeps its state (a deadline stands).
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn, c.r = nil, nil
	return err
}

// do sends one request, reconnecting and retrying once if the connection
// is broken, and returns the text after "ok".
func (c *Client) do(line func() string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if c.conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			err = c.connect(ctx)
			cancel()
			if err != nil {
				continue
			}
		}
		var body string
		body, err = c.roundTrip(line())
		if err == nil {
			return body, nil
		}
		var rerr *replyError
		if errors.As(err, &rerr) {
			return "", err // the guard answered: retrying would not help
		}
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
	return "", err
}

func (c *Client) connect(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return fmt.Errorf("connect to fence guard: %w", err)
	}
	c.conn, c.r = conn, bufio.NewReaderSize(conn, 512)
	return nil
}

// replyError is a request the guard refused.
type replyError struct{ msg string }

func (e *replyError) Error() string { return "guard refused: " + e.msg }

func (c *Client) roundTrip(line string) (string, error) {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return "", err
	}
	if _, err := c.conn.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	reply, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	reply = strings.TrimSuffix(reply, "\n")
	word, rest, _ := strings.Cut(reply, " ")
	switch word {
	case replyOK:
		return rest, nil
	case replyErr:
		return "", &replyError{msg: rest}
	}
	return "", fmt.Errorf("malformed reply %q", reply)
}
