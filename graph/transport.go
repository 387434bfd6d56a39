package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/tollgate-billing/tollgate/graph/model"
	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/jsontext"
)

// httpTransport is the one way requests reach the executor: GraphQL over
// HTTP with a JSON body on POST, or URL parameters on GET (queries only).
// It takes every request, so that whatever a client sends wrong (another
// method, another content type, a body that is not one JSON object with a
// query) is answered like any other GraphQL error: a JSON body with an
// extensions.code and a status that says what to change. gqlgen's own
// transports answer those with Go's decoder text, the body echoed back,
// or a bare "transport not supported".
type httpTransport struct {
	schema *ast.Schema
	vars   *preparedVars
}

var _ graphql.Transport = httpTransport{}

// Codes of requests refused before any GraphQL runs.
const (
	CodeBadRequest           apperr.Code = "BAD_REQUEST"
	CodeMethodNotAllowed     apperr.Code = "METHOD_NOT_ALLOWED"
	CodeUnsupportedMediaType apperr.Code = "UNSUPPORTED_MEDIA_TYPE"
)

func (httpTransport) Supports(*http.Request) bool { return true }

func (t httpTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if r.Header.Get("Upgrade") != "" {
		refuse(w, r, http.StatusBadRequest, CodeBadRequest, "websockets and other protocol upgrades are not supported; send each operation as its own POST")
		return
	}
	switch r.Method {
	case http.MethodPost:
		t.post(w, r, exec)
	case http.MethodGet:
		t.get(w, r, exec)
	case http.MethodOptions:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, POST")
		refuse(w, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"method "+r.Method+" is not supported: send operations with POST (or queries with GET)")
	}
}

// acceptedMedia is what a POST body may be.
const acceptedMedia = "application/json"

func (t httpTransport) post(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	// A malformed parameter (charset without a value) still names the type.
	media, mediaParams, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch charset := mediaParams["charset"]; {
	case (err == nil || errors.Is(err, mime.ErrInvalidMediaParameter)) && media == acceptedMedia &&
		charset != "" && !strings.EqualFold(charset, "utf-8") && !strings.EqualFold(charset, "utf8"):
		// JSON is UTF-8 (RFC 8259); another charset would be read as it.
		refuse(w, r, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"the body must be UTF-8: send Content-Type: application/json without a charset, or with charset=utf-8")
		return
	case (err == nil || errors.Is(err, mime.ErrInvalidMediaParameter)) && media == acceptedMedia:
	case strings.HasPrefix(media, "multipart/"):
		refuse(w, r, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"multipart requests (file uploads) are not supported; send Content-Type: application/json")
		return
	default:
		refuse(w, r, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			`Content-Type must be application/json, with a body like {"query": "...", "variables": {...}}`)
		return
	}
	if enc := strings.TrimSpace(r.Header.Get("Content-Encoding")); enc != "" && !strings.EqualFold(enc, "identity") {
		// A compressed body would be read as the JSON it is not.
		refuse(w, r, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"compressed bodies (Content-Encoding) are not supported; send the JSON as it is")
		return
	}
	start := graphql.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if tooLarge, ok := errors.AsType[*http.MaxBytesError](err); ok {
			refuseWith(w, r, http.StatusRequestEntityTooLarge, apperr.RequestTooLarge,
				"request body is larger than the limit", map[string]any{"limitBytes": tooLarge.Limit})
			return
		}
		refuse(w, r, http.StatusBadRequest, CodeBadRequest, "the request body could not be read")
		return
	}
	params, msg := decodeBody(body)
	if msg != "" {
		refuse(w, r, http.StatusBadRequest, CodeBadRequest, msg)
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	t.run(w, r, preparedExec{GraphExecutor: exec, vars: t.vars}, params, false)
}

func (t httpTransport) get(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	start := graphql.Now()
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		refuse(w, r, http.StatusBadRequest, CodeBadRequest, "the URL's query string is malformed")
		return
	}
	for _, name := range []string{"query", "operationName", "variables", "extensions"} {
		switch values := q[name]; {
		case len(values) > 1:
			// Which one a proxy or a log reads is not which one runs.
			refuse(w, r, http.StatusBadRequest, CodeBadRequest, "the URL names "+name+" more than once; send it once")
			return
		case len(values) == 1 && !utf8.ValidString(values[0]):
			refuse(w, r, http.StatusBadRequest, CodeBadRequest, name+" is not valid UTF-8")
			return
		}
	}
	params := &graphql.RawParams{Query: q.Get("query"), OperationName: q.Get("operationName"), Headers: r.Header}
	if params.Query == "" && q.Get("extensions") == "" {
		refuse(w, r, http.StatusBadRequest, CodeBadRequest,
			"a GET request needs a query parameter, e.g. /graphql?query={plans{id}}; send mutations with POST")
		return
	}
	for _, p := range []struct {
		name string
		into *map[string]any
	}{{"variables", &params.Variables}, {"extensions", &params.Extensions}} {
		raw := q.Get(p.name)
		if raw == "" {
			continue
		}
		m, ok := decodeObject([]byte(raw))
		if !ok && jsontext.TooDeep([]byte(raw)) {
			refuse(w, r, http.StatusBadRequest, CodeBadRequest, tooDeep(p.name))
			return
		}
		if !ok {
			refuse(w, r, http.StatusBadRequest, CodeBadRequest, p.name+" must be a JSON object")
			return
		}
		if a := jsontext.Check([]byte(raw), false); a.Found() {
			refuse(w, r, http.StatusBadRequest, CodeBadRequest, ambiguous(p.name, a))
			return
		}
		*p.into = m
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	t.run(w, r, exec, params, true)
}

// run is gqlgen's POST and GET transports from the parsed parameters on:
// status codes by Accept, a GET that names a mutation refused.
func (t httpTransport) run(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, params *graphql.RawParams, onlyQueries bool) {
	media := responseMedia(r)
	w.Header().Set("Content-Type", media)
	ctx := withRawVariables(r.Context(), params.Variables)
	op, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		errs = betterVariableErrors(t.schema, op, params.Variables, errs)
		if op != nil && op.Doc != nil && op.Operation == nil {
			errs = noSuchOperation(op.Doc, params.OperationName, errs)
		}
		// Under application/json a request that reached GraphQL answers
		// 200 whatever is wrong with its document (httpspec.go).
		if media == graphQLResponseJSON && errcode.GetErrorKind(errs) == errcode.KindProtocol {
			w.WriteHeader(http.StatusBadRequest)
		}
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, op), errs))
		return
	}
	if onlyQueries && op.Operation.Operation != ast.Query {
		w.Header().Set("Allow", "POST")
		refuse(w, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"a GET request may only run a query; send "+string(op.Operation.Operation)+"s with POST")
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, op)
	writeResponse(w, responses(ctx))
}

// noSuchOperation words gqlgen's "operation X not found" (and "operation
// not found" when a document of several operations names none) as what to
// change.
func noSuchOperation(doc *ast.QueryDocument, name string, errs gqlerror.List) gqlerror.List {
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Message, "operation ") || !strings.HasSuffix(errs[0].Message, " not found") {
		return errs
	}
	switch {
	case name == "":
		errs[0].Message = fmt.Sprintf("the document holds %d operations; name the one to run in operationName", len(doc.Operations))
	case len(name) <= 64:
		errs[0].Message = fmt.Sprintf("the document has no operation named %q", name)
	default:
		errs[0].Message = "the document has no operation of the name in operationName"
	}
	return errs
}

// decodeBody reads a POST body: one JSON object with a query (a string),
// and optionally operationName (a string), variables and extensions
// (objects). msg says what is wrong with any other body, in words that do
// not repeat it.
func decodeBody(body []byte) (_ *graphql.RawParams, msg string) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return nil, `the request body is empty; send a JSON object like {"query": "{ plans { id } }"}`
	case trimmed[0] == '[':
		return nil, "batched requests are not supported; send one operation per request"
	case trimmed[0] != '{':
		return nil, `the request body is not a JSON object with a query, like {"query": "{ plans { id } }"}`
	}
	// One pass, numbers kept as written (json.Number: a float64 cannot
	// hold every Int64); each field's kind is checked after.
	var env struct {
		Query         any `json:"query"`
		OperationName any `json:"operationName"`
		Variables     any `json:"variables"`
		Extensions    any `json:"extensions"`
	}
	if !utf8.Valid(trimmed) {
		// encoding/json would read each bad byte as U+FFFD, silently.
		return nil, "the request body is not valid UTF-8"
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if dec.Decode(&env) != nil {
		if jsontext.TooDeep(trimmed) {
			return nil, nestedTooDeep(trimmed)
		}
		return nil, "the request body is not valid JSON"
	}
	switch _, err := dec.Token(); {
	case err == io.EOF:
	case err != nil:
		return nil, "the request body is not valid JSON"
	default:
		return nil, "the request body holds more than one JSON value; send one object per request"
	}
	// Read into a struct, the body's own members match in any case.
	if a := jsontext.Check(trimmed, true); a.Found() {
		return nil, ambiguous("the request body", a)
	}
	p := &graphql.RawParams{}
	var ok bool
	if p.Query, ok = fieldOf[string](env.Query); !ok {
		return nil, "query must be a string holding a GraphQL document"
	}
	if p.OperationName, ok = fieldOf[string](env.OperationName); !ok {
		return nil, "operationName must be a string"
	}
	if p.Variables, ok = fieldOf[map[string]any](env.Variables); !ok {
		return nil, "variables must be a JSON object, like {\"name\": value}"
	}
	normalizeNumbers(p.Variables)
	if p.Extensions, ok = fieldOf[map[string]any](env.Extensions); !ok {
		return nil, "extensions must be a JSON object"
	}
	// A persisted query's hash may stand in for the document.
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return nil, `the request body has no query; send a JSON object like {"query": "{ plans { id } }"}`
	}
	return p, ""
}

// tooDeep words a refusal of what, valid JSON perhaps, for nesting deeper
// than jsontext.MaxDepth, which encoding/json reports as a syntax error.
func tooDeep(what string) string {
	return fmt.Sprintf("%s holds JSON nested more than %d levels deep (arrays and objects inside each other), the most Tollgate reads; send it flatter",
		what, jsontext.MaxDepth)
}

// nestedTooDeep is tooDeep for a request body, naming the member of it that
// nests too deep when that is one a request has.
func nestedTooDeep(body []byte) string {
	m := jsontext.MembersOf(body)
	for m.Next() {
		switch name := string(m.Name()); name {
		case "query", "operationName", "variables", "extensions":
			if jsontext.TooDeep(m.Value()) {
				return tooDeep(name + " in the request body")
			}
		}
	}
	return tooDeep("the request body")
}

// ambiguous words a refusal of JSON that encoding/json would read one way
// and another reader (a proxy, a log) another (jsontext).
func ambiguous(what string, a jsontext.Ambiguity) string {
	switch {
	case a.LoneSurrogate:
		return what + ` holds an escaped surrogate (\ud800 to \udfff) that is not half of a pair; it would be read as U+FFFD`
	case len(a.Twice) > 64 || !utf8.ValidString(a.Twice):
		return what + " names a member twice in one object; send each once"
	}
	return fmt.Sprintf("%s names %q twice in one object; send each member once", what, a.Twice)
}

// fieldOf is v when it is a T, and T's zero value when it is absent or
// null; ok is false for any other value.
func fieldOf[T any](v any) (T, bool) {
	var zero T
	if v == nil {
		return zero, true
	}
	t, ok := v.(T)
	return t, ok
}

// decodeObject reads an absent or null value as nil, and otherwise only a
// JSON object, with every number kept exactly as written (json.Number):
// a float64 cannot hold every Int64.
func decodeObject(raw []byte) (map[string]any, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	if raw[0] != '{' {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	normalizeNumbers(m)
	return m, true
}

// normalizeNumbers rewrites, in place, each number in v written with a
// fraction or an exponent that is a whole int64 (1e3, 1.0) as plain digits,
// so that Int and Int64 read it as the integer it is, as a JSON client
// that sent 1000 meant.
func normalizeNumbers(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if n, ok := wholeNumber(x); ok {
				v[k] = n
			} else {
				normalizeNumbers(x)
			}
		}
	case []any:
		for i, x := range v {
			if n, ok := wholeNumber(x); ok {
				v[i] = n
			} else {
				normalizeNumbers(x)
			}
		}
	}
}

// wholeNumber is x as plain digits when x is a number written otherwise
// whose value is a whole int64.
func wholeNumber(x any) (json.Number, bool) {
	n, ok := x.(json.Number)
	if !ok || !strings.ContainsAny(string(n), ".eE") {
		return "", false
	}
	v, msg := model.IntegerIn(string(n), math.MinInt64, math.MaxInt64)
	if msg != "" {
		return "", false
	}
	return json.Number(strconv.FormatInt(v, 10)), true
}

// responseMedia is the answer's media type by the request's Accept, as
// gqlgen chooses it: application/json unless only the GraphQL response
// type is asked for.
func responseMedia(r *http.Request) string {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return "application/json"
	}
	for part := range strings.SplitSeq(accept, ",") {
		media, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch media {
		case "*/*", "application/*", "application/json":
			return "application/json"
		case graphQLResponseJSON:
			return graphQLResponseJSON
		}
	}
	return graphQLResponseJSON
}

// refuse answers a request refused before GraphQL runs: a GraphQL response
// with one error and no data entry.
func refuse(w http.ResponseWriter, r *http.Request, status int, code apperr.Code, msg string) {
	refuseWith(w, r, status, code, msg, nil)
}

func refuseWith(w http.ResponseWriter, r *http.Request, status int, code apperr.Code, msg string, ext map[string]any) {
	extensions := map[string]any{"code": string(code)}
	for k, v := range ext {
		extensions[k] = v
	}
	w.Header().Set("Content-Type", responseMedia(r))
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		Errors gqlerror.List `json:"errors"`
	}{gqlerror.List{{Message: msg, Extensions: extensions}}})
	_, _ = w.Write(b)
}

func writeResponse(w io.Writer, resp *graphql.Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		// Only a resolver's value could fail to encode; the generated
		// code writes every value itself, so this is a bug here.
		panic(err)
	}
	_, _ = w.Write(b)
}
