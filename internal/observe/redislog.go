package observe

import (
	"context"
	"fmt"
	"log/slog"
)

// RedisLogger routes go-redis's own messages through slog at debug level.
// go-redis otherwise prints unformatted lines straight to stderr, one per
// failed dial ("pool.go: failed to dial", many a second while Redis is
// down), amid the JSON logs; Tollgate logs an outage itself, once, at
// WARN, so the client's lines are only detail. Install it with
// redis.SetLogger.
type RedisLogger struct{ Log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.Log.DebugContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}
