package apperr

import (
	"encoding/json"
	"net/http"
)

// RequestTooLarge refuses a body over the limit before GraphQL reads it.
const RequestTooLarge Code = "REQUEST_TOO_LARGE"

// WriteJSON answers with v as JSON: the one way Tollgate writes a JSON
// response outside the GraphQL handler (health checks, webhook replies,
// refusals made before GraphQL runs).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteRefusal answers with a GraphQL response holding one error, for a
// request refused before GraphQL runs (over the rate limit, a body too
// large), so clients read it like any other. ext adds to the code in
// extensions.
func WriteRefusal(w http.ResponseWriter, status int, code Code, message string, ext map[string]any) {
	extensions := map[string]any{"code": code}
	for k, v := range ext {
		extensions[k] = v
	}
	WriteJSON(w, status, map[string]any{"errors": []map[string]any{{"message": message, "extensions": extensions}}})
}
