package store

import (
	"strings"
	"unicode/utf8"
)

// StorableText reports whether both databases can store and compare s as
// text: valid UTF-8 without NUL. Postgres refuses either with an error that
// would reach the client as INTERNAL; SQLite would store bytes it then
// compares differently. Every domain service checks client strings with it
// before they reach a query.
func StorableText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// MaxIDLength bounds an id a client sends back (API key ids are UUIDs,
// Stripe's ids are shorter still): a longer one cannot name a row.
const MaxIDLength = 255

// PlausibleID reports whether id could name a row: storable text of at most
// MaxIDLength bytes. Lookups answer "not found" for any other without asking
// the database.
func PlausibleID(id string) bool {
	return id != "" && len(id) <= MaxIDLength && StorableText(id)
}
