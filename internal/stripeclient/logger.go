package stripeclient

import (
	"fmt"
	"log/slog"
)

// leveledLogger sends stripe-go's log lines to slog. stripe-go logs every
// request and retry at info; those are debug detail for Tollgate, whose own
// logs say what a Stripe call was for.
type leveledLogger struct{ l *slog.Logger }

func (g leveledLogger) Debugf(format string, v ...any) { g.l.Debug(fmt.Sprintf(format, v...)) }
func (g leveledLogger) Infof(format string, v ...any)  { g.l.Debug(fmt.Sprintf(format, v...)) }
func (g leveledLogger) Warnf(format string, v ...any)  { g.l.Warn(fmt.Sprintf(format, v...)) }
func (g leveledLogger) Errorf(format string, v ...any) { g.l.Error(fmt.Sprintf(format, v...)) }
