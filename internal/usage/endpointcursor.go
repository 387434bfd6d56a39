package usage

import (
	"strconv"

	"github.com/tollgate-billing/tollgate/internal/store"
)

// An endpoint cursor is the sort key of the last row seen of ByEndpoint,
// (used, meter, endpoint), as a store keyset cursor. Meter names hold no
// "|"; an endpoint may, so it comes last.
const endpointCursorVersion = "e1"

func encodeEndpointCursor(e EndpointUsage) string {
	return store.EncodeCursor(endpointCursorVersion, strconv.FormatInt(e.Used, 10), e.Meter, e.Endpoint)
}

// decodeEndpointCursor reads a cursor encodeEndpointCursor wrote.
func decodeEndpointCursor(s string) (EndpointUsage, bool) {
	parts, ok := store.DecodeCursor(s, endpointCursorVersion, 3)
	if !ok || parts[1] == "" {
		return EndpointUsage{}, false
	}
	used, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return EndpointUsage{}, false
	}
	e := EndpointUsage{Used: used, Meter: parts[1], Endpoint: parts[2]}
	// Anything encodeEndpointCursor would not have written (+5, 05) was
	// made by hand.
	if encodeEndpointCursor(e) != s {
		return EndpointUsage{}, false
	}
	return e, true
}
