package invoices

import (
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
)

// A cursor is the sort key of the last invoice seen, (created_at, id),
// base64-encoded: clients treat it as opaque, and it stays correct while
// invoices are added, unlike an offset.
type cursor struct {
	createdAt time.Time
	id        string
}

const cursorVersion = "v1"

func encodeCursor(inv Invoice) string {
	raw := cursorVersion + "|" + inv.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + inv.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, err
	}
	parts := strings.SplitN(string(b), "|", 3)
	if len(parts) != 3 || parts[0] != cursorVersion || parts[2] == "" {
		return cursor{}, errors.New("malformed invoice cursor")
	}
	t, err := time.Parse(time.RFC3339Nano, parts[1])
	if err != nil {
		return cursor{}, err
	}
	// encodeCursor writes UTC in one form; anything else (+24:00, year
	// 0001) was made by hand and names no invoice.
	if t.UTC().Format(time.RFC3339Nano) != parts[1] || !clock.InYears(t.Unix()) {
		return cursor{}, errors.New("malformed invoice cursor")
	}
	return cursor{createdAt: t.UTC(), id: parts[2]}, nil
}
