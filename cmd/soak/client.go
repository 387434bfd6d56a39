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

// newHTTPClient has room for every concurrent client's connection to both
// processes, so keep-alive connections are reused rather than churned.
func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			MaxIdleConns:        512,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func (e gqlError) code() string   { s, _ := e.Extensions["code"].(string); return s }
func (e gqlError) reason() string { s, _ := e.Extensions["reason"].(string); return s }

// gqlResponse is one HTTP exchange with /graphql.
type gqlResponse struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
	Raw    []byte          `json:"-"`
}

// failure names what went wrong with an exchange, for tallies: "" when it
// succeeded, else "transport", "http 5xx", "http 429", or the GraphQL error
// code (with the reason for UNAUTHENTICATED).
func (r *gqlResponse) failure(err error) string {
	switch {
	case err != nil:
		return "transport error"
	case r.Status >= 500:
		return "http 5xx"
	case r.Status != http.StatusOK:
		return fmt.Sprintf("http %d", r.Status)
	case len(r.Errors) > 0:
		e := r.Errors[0]
		if e.reason() != "" {
			return e.code() + "/" + e.reason()
		}
		if e.code() == "" {
			return "graphql error without code"
		}
		return e.code()
	}
	return ""
}

// gqlBody encodes an operation.
func gqlBody(query string, vars map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		panic(err) // the harness encodes only its own plain values
	}
	return b
}

// postGraphQL sends body to base's /graphql with headers and decodes the
// answer. A transport failure is the error; HTTP and GraphQL failures are
// in the response.
func postGraphQL(ctx context.Context, c *http.Client, base string, headers map[string]string, body []byte) (*gqlResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/graphql", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return send(c, req)
}

// send does req and decodes a GraphQL answer from it.
func send(c *http.Client, req *http.Request) (*gqlResponse, error) {
	resp, err := c.Do(req)
	if err != nil {
		return &gqlResponse{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return &gqlResponse{Status: resp.StatusCode}, err
	}
	out := &gqlResponse{Status: resp.StatusCode, Raw: raw}
	if err := json.Unmarshal(raw, out); err != nil && resp.StatusCode == http.StatusOK {
		return out, fmt.Errorf("undecodable GraphQL answer: %w: %.200s", err, raw)
	}
	out.Status = resp.StatusCode
	return out, nil
}

// query runs an operation that must succeed and decodes its data into v.
func query(ctx context.Context, c *http.Client, base string, headers map[string]string, q string, vars map[string]any, v any) error {
	r, err := postGraphQL(ctx, c, base, headers, gqlBody(q, vars))
	if f := r.failure(err); f != "" {
		return fmt.Errorf("%s: %v %.300s", f, err, r.Raw)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(r.Data, v)
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}
