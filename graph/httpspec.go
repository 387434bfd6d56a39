package graph

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
)

// specStatus makes gqlgen's HTTP answers follow the GraphQL over HTTP
// specification's SHOULDs where gqlgen does not:
//
//   - Under application/json, a well-formed request answers 200 whatever
//     GraphQL errors it carries: gqlgen answers 422 to a document that fails
//     to parse or validate, or whose variables do not coerce.
//   - Under application/graphql-response+json, a request that fails before
//     execution (gqlgen's 4xx) carries no data entry: gqlgen writes
//     "data": null, which says execution began.
//
// gqlgen writes a failure's headers and whole body before returning, so
// holding that one body back costs nothing on the success path.
func specStatus(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &specWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		sw.flush()
	})
}

const graphQLResponseJSON = "application/graphql-response+json"

type specWriter struct {
	http.ResponseWriter
	held    *bytes.Buffer // the body of a 4xx graphql-response+json answer
	wrote   bool
	heldFor int
}

func (w *specWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if code < 400 {
		// Nothing to change: skip parsing the media type on the hot path.
		w.ResponseWriter.WriteHeader(code)
		return
	}
	media, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type"))
	switch {
	case media == "application/json" && code == http.StatusUnprocessableEntity:
		code = http.StatusOK
	case media == graphQLResponseJSON && code >= 400 && code < 500:
		w.held, w.heldFor = &bytes.Buffer{}, code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *specWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.held != nil {
		return w.held.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// flush writes a held body without its data entry.
func (w *specWriter) flush() {
	if w.held == nil {
		return
	}
	body := w.held.Bytes()
	var resp map[string]json.RawMessage
	if json.Unmarshal(body, &resp) == nil {
		if d, ok := resp["data"]; ok && string(d) == "null" {
			delete(resp, "data")
			if b, err := json.Marshal(resp); err == nil {
				body = b
			}
		}
	}
	w.ResponseWriter.WriteHeader(w.heldFor)
	_, _ = w.ResponseWriter.Write(body)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *specWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
