package stripetest

import (
	"io"
	"log/slog"
)

// Discard is a logger for tests whose subject is not the log.
func Discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
