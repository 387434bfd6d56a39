package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// redisOutage is how long Redis stays down; postgresOutage how long
// Postgres does, between its stop and start.
const (
	redisOutage    = 5 * time.Second
	postgresOutage = 3 * time.Second
)

// injectFaults stops and restarts Redis a quarter into the run, and
// restarts Postgres at 60%, while the clients keep recording. It returns a
// line per fault for the report.
func injectFaults(ctx context.Context, env *environment, start time.Time, d time.Duration, log *slog.Logger) ([]string, error) {
	var timeline []string
	at := func() string { return fmt.Sprintf("t+%.1fs", time.Since(start).Seconds()) }
	sleepUntil := func(t time.Time) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(t)):
			return nil
		}
	}

	if err := sleepUntil(start.Add(d / 4)); err != nil {
		return timeline, err
	}
	log.Info("soak: fault: stopping redis")
	stopAt := at()
	env.redis.stop()
	if err := sleepUntil(time.Now().Add(redisOutage)); err != nil {
		return timeline, err
	}
	if err := env.redis.start(ctx); err != nil {
		return timeline, fmt.Errorf("restart redis: %w", err)
	}
	timeline = append(timeline, fmt.Sprintf("redis stopped %s, started again (empty) %s", stopAt, at()))
	log.Info("soak: fault: redis is back")

	if err := sleepUntil(start.Add(d * 6 / 10)); err != nil {
		return timeline, err
	}
	log.Info("soak: fault: restarting postgres")
	pgAt := at()
	what, err := env.pg.restart(ctx, postgresOutage)
	if err != nil {
		return timeline, fmt.Errorf("restart postgres: %w", err)
	}
	if what == "" {
		timeline = append(timeline, "postgres NOT restarted (shared server; -restart-shared-postgres not given)")
	} else {
		timeline = append(timeline, fmt.Sprintf("postgres %s: %s, back %s", what, pgAt, at()))
	}
	log.Info("soak: fault: postgres is back")
	return timeline, nil
}
