package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// graphQL posts operations to Tollgate as a host backend would: one keep-alive
// connection pool, a bearer token, JSON bodies.
type graphQL struct {
	http *http.Client
	url  string
	auth string
}

func newGraphQL(baseURL, token string) *graphQL {
	tr := &http.Transport{
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// Enough idle connections for every concurrent worker, so no
		// request pays for a new connection after warm-up.
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &graphQL{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}, url: baseURL + "/graphql", auth: "Bearer " + token}
}

func (c *graphQL) close() { c.http.CloseIdleConnections() }

// body encodes an operation once, so hot loops send prepared bytes.
func body(query string, vars map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		panic(err) // only static values are encoded
	}
	return b
}

// post sends a prepared body and returns the raw response. Any transport
// failure, non-200 status or GraphQL error is an error: a benchmark must not
// count failures as fast answers.
func (c *graphQL) post(ctx context.Context, b []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", c.auth)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	// A successful response never contains this key, so the hot loop can
	// skip decoding.
	if resp.StatusCode != http.StatusOK || bytes.Contains(raw, []byte(`"errors"`)) {
		return raw, &responseError{Status: resp.StatusCode, Body: raw}
	}
	return raw, nil
}

// responseError is an answer that is not a success.
type responseError struct {
	Status int
	Body   []byte
}

func (e *responseError) Error() string {
	return fmt.Sprintf("POST /graphql: HTTP %d: %.300s", e.Status, e.Body)
}

// do sends an operation and decodes its data into out.
func (c *graphQL) do(ctx context.Context, query string, vars map[string]any, out any) error {
	raw, err := c.post(ctx, body(query, vars))
	if err != nil {
		return err
	}
	var resp struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("decode response %.300s: %w", raw, err)
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		return fmt.Errorf("decode data %.300s: %w", resp.Data, err)
	}
	return nil
}
