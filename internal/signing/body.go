package signing

import (
	"errors"
	"io"
)

// MaxBodyBytes is the largest body a signed request may have: the body is
// held in memory to be hashed.
const MaxBodyBytes = 1 << 20

var errBodyTooLarge = errors.New("request body exceeds 1 MiB")

// readCapped reads r to the end, or up to one byte past MaxBodyBytes, which
// it reports as errBodyTooLarge along with what it read.
func readCapped(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return b, err
	}
	if len(b) > MaxBodyBytes {
		return b, errBodyTooLarge
	}
	return b, nil
}
