package role

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

// Client talks to one role's control port.
type Client struct {
	Role string
	Base string // "http://host:port"
}

// Get fetches path; a status of 300 or more is an error carrying the
// body's text.
func (c Client) Get(ctx context.Context, path string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, path, nil)
}

// Post sends body (JSON) to path and returns the answer's body.
func (c Client) Post(ctx context.Context, path string, body []byte) ([]byte, error) {
	return c.do(ctx, http.MethodPost, path, body)
}

// Status is the HTTP status of GET path, without reading more: 503 while
// a role awaits its spec, 200 once it runs; an error when nothing answers.
func (c Client) Status(ctx context.Context, path string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s control: %w", c.Role, err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (c Client) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, r)
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
