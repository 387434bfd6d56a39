package invoices

import (
	"errors"
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// A cursor is the sort key of the last invoice seen, (created_at, id), as
// a store keyset cursor.
type cursor struct {
	createdAt time.Time
	id        string
}

const cursorVersion = "v1"

func encodeCursor(inv Invoice) string {
	return store.EncodeCursor(cursorVersion, inv.CreatedAt.UTC().Format(time.RFC3339Nano), inv.ID)
}

func decodeCursor(s string) (cursor, error) {
	parts, ok := store.DecodeCursor(s, cursorVersion, 2)
	if !ok || parts[1] == "" {
		return cursor{}, errors.New("malformed invoice cursor")
	}
	t, err := time.Parse(time.RFC3339Nano, parts[0])
	if err != nil {
		return cursor{}, err
	}
	// encodeCursor writes UTC in one form; anything else (+24:00, year
	// 0001) was made by hand and names no invoice.
	if t.UTC().Format(time.RFC3339Nano) != parts[0] || !clock.InYears(t.Unix()) {
		return cursor{}, errors.New("malformed invoice cursor")
	}
	return cursor{createdAt: t.UTC(), id: parts[1]}, nil
}
