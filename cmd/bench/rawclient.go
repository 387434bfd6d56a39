package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawClient posts one prepared GraphQL request over keep-alive HTTP/1.1
// connections, writing and reading on the caller's goroutine.
//
// net/http's client hands every request to two goroutines of its own (a
// writer and a reader per connection) and back, and on two cores those
// handoffs and its allocations were a fifth of the machine's CPU in the gate
// phases and part of every latency measured. This client sends bytes
// prepared once and reads just the status line, Content-Length and body, so
// what is timed is Tollgate's answer. It only speaks to Go's net/http server
// answering small bodies, which always carry Content-Length.
type rawClient struct {
	addr string
	// head is the request up to its Content-Length; req is head with the
	// body given to newRawClient.
	head, req []byte
	idle      chan *rawConn
}

type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

// maxIdleRaw bounds the kept connections; the open-loop phases rarely have
// more than a few dozen requests in flight.
const maxIdleRaw = 256

func newRawClient(baseURL, credential string, body []byte) (*rawClient, error) {
	return newRawClientAt(baseURL, "/graphql", credential, body)
}

// newRawClientAt is newRawClient posting to path.
func newRawClientAt(baseURL, path, credential string, body []byte) (*rawClient, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, err
	}
	head := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\n",
		path, u.Host, credential)
	rc := &rawClient{addr: u.Host, head: head, idle: make(chan *rawConn, maxIdleRaw)}
	rc.req = rc.request(body)
	return rc, nil
}

// request is a whole request with this body.
func (rc *rawClient) request(body []byte) []byte {
	req := make([]byte, 0, len(rc.head)+40+len(body))
	req = append(req, rc.head...)
	req = append(req, "Content-Length: "...)
	req = strconv.AppendInt(req, int64(len(body)), 10)
	req = append(req, "\r\n\r\n"...)
	return append(req, body...)
}

func (rc *rawClient) close() {
	for {
		select {
		case c := <-rc.idle:
			c.c.Close()
		default:
			return
		}
	}
}

// post sends the prepared request and checks the answer as graphQL.post
// does: any status but 200, or a body with "errors", is an error.
func (rc *rawClient) post(ctx context.Context) error {
	_, err := rc.roundTrip(ctx, rc.req)
	return err
}

// send posts this body, checks the answer as post does and returns it.
func (rc *rawClient) send(ctx context.Context, body []byte) ([]byte, error) {
	return rc.roundTrip(ctx, rc.request(body))
}

func (rc *rawClient) roundTrip(ctx context.Context, req []byte) ([]byte, error) {
	var conn *rawConn
	select {
	case conn = <-rc.idle:
	default:
		c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", rc.addr)
		if err != nil {
			return nil, err
		}
		conn = &rawConn{c: c, br: bufio.NewReaderSize(c, 4096)}
	}
	status, body, err := conn.roundTrip(req)
	if err != nil {
		conn.c.Close()
		return nil, err
	}
	select {
	case rc.idle <- conn:
	default:
		conn.c.Close()
	}
	if status != 200 || bytes.Contains(body, []byte(`"errors"`)) {
		return body, &responseError{Status: status, Body: body}
	}
	return body, nil
}

func (c *rawConn) roundTrip(req []byte) (status int, body []byte, err error) {
	if err := c.c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return 0, nil, err
	}
	if _, err := c.c.Write(req); err != nil {
		return 0, nil, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if ok && bytes.EqualFold(name, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return 0, nil, fmt.Errorf("bad Content-Length %q", value)
			}
		}
	}
	if length < 0 {
		return 0, nil, fmt.Errorf("HTTP %d answer without Content-Length", status)
	}
	body = make([]byte, length)
	if _, err := io.ReadFull(c.br, body); err != nil {
		return 0, nil, err
	}
	return status, body, nil
}
