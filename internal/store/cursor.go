package store

import (
	"encoding/base64"
	"strings"
)

// A keyset cursor is the sort key of the last row of a page, its fields
// joined by "|" after a version and base64-encoded: clients treat it as
// opaque, and it stays correct while rows are added, unlike an offset.

// EncodeCursor writes version and fields as a cursor. Only the last field
// may hold "|".
func EncodeCursor(version string, fields ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(version + "|" + strings.Join(fields, "|")))
}

// DecodeCursor reads the n fields of a cursor EncodeCursor wrote with
// version; ok is false for anything else. Every field goes into a query, so
// a cursor that is not StorableText (made by hand: a NUL or bytes that are
// not UTF-8, which Postgres refuses with an error) names no row.
func DecodeCursor(s, version string, n int) (fields []string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !StorableText(string(b)) {
		return nil, false
	}
	parts := strings.SplitN(string(b), "|", n+1)
	if len(parts) != n+1 || parts[0] != version {
		return nil, false
	}
	return parts[1:], true
}
