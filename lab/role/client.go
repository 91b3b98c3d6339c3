package role

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
)

// Client talks to one role's control port. When the port stops answering
// (the role's container was restarted or reconnected, and the engine gave
// its port a new host port) and Locate is set, it asks Locate where the
// port is now and tries once more.
type Client struct {
	Role   string
	Locate func(ctx context.Context) (string, error)

	mu   sync.Mutex
	base string // "http://host:port"
}

// NewClient is the client of role's control port at base.
func NewClient(role, base string) *Client { return &Client{Role: role, base: base} }

// Base is the control port's address now.
func (c *Client) Base() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base
}

// Get fetches path; a status of 300 or more is an error carrying the
// body's text.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, path, nil)
}

// Stream GETs path and hands the answer's body to read as it arrives,
// never holding it whole (a role's event log of any size).
func (c *Client) Stream(ctx context.Context, path string, read func(io.Reader) error) error {
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s control: GET %s: %s: %s", c.Role, path, resp.Status, bytes.TrimSpace(b))
	}
	if err := read(resp.Body); err != nil {
		return fmt.Errorf("%s control: GET %s: %w", c.Role, path, err)
	}
	return nil
}

// Post sends body (JSON) to path and returns the answer's body.
func (c *Client) Post(ctx context.Context, path string, body []byte) ([]byte, error) {
	return c.do(ctx, http.MethodPost, path, body)
}

// Status is the HTTP status of GET path, without reading more: 503 while
// a role awaits its spec, 200 once it runs; an error when nothing answers.
func (c *Client) Status(ctx context.Context, path string) (int, error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s control: %w", c.Role, err)
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s control: %s %s: %s: %s", c.Role, method, path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// send makes one request, and one more at the port's new address when
// nothing answered at the old one.
func (c *Client) send(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	resp, err := c.once(ctx, method, path, body)
	if err == nil || c.Locate == nil || ctx.Err() != nil || !refused(err) {
		return resp, err
	}
	base, lerr := c.Locate(ctx)
	if lerr != nil || base == c.Base() {
		return nil, err
	}
	c.mu.Lock()
	c.base = base
	c.mu.Unlock()
	return c.once(ctx, method, path, body)
}

func (c *Client) once(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base()+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s control: %w", c.Role, err)
	}
	return resp, nil
}

// refused says whether err is nothing answering at the address (as
// opposed to an answer that went wrong half way).
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
