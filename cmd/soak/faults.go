package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// redisOutage is how long Redis (or, in a cluster, one master) stays down;
// postgresOutage how long Postgres does, between its stop and start.
// The webhook receiver is unreachable from receiverLead before Postgres
// stops until receiverLag after it is back, so that deliveries sent just
// before and picked up again just after find it down. In the failWindow
// before that, it answers 500 to half the first arrivals: their retries,
// 24 to 36 s later (River's first backoff), land after it is back, so no
// delivery fails twice and waits for the 60 s second backoff.
const (
	redisOutage    = 5 * time.Second
	postgresOutage = 3 * time.Second
	receiverLead   = 2 * time.Second
	receiverLag    = 3 * time.Second
	failWindow     = 10 * time.Second
)

// injectFaults stops and restarts Redis a quarter into the run, and
// restarts Postgres at 60%, while the clients keep recording; the webhook
// receiver fails first arrivals for a while, then is unreachable from
// shortly before Postgres stops until shortly after it is back. It returns a line per fault for the report;
// onRedisOutage, when set, hears when Redis went down and came back.
func injectFaults(ctx context.Context, env *environment, start time.Time, d time.Duration, onRedisOutage func(from, to time.Time), log *slog.Logger) ([]string, error) {
	var timeline []string
	at := func() string { return fmt.Sprintf("t+%.1fs", time.Since(start).Seconds()) }
	sleepUntil := func(t time.Time) error { return sleepCtx(ctx, time.Until(t)) }

	if err := sleepUntil(start.Add(d / 4)); err != nil {
		return timeline, err
	}
	log.Info("soak: fault: redis outage")
	stopAt, down := at(), time.Now()
	what, err := env.redis.outage(ctx, redisOutage)
	if err != nil {
		return timeline, err
	}
	if onRedisOutage != nil {
		onRedisOutage(down, time.Now())
	}
	timeline = append(timeline, fmt.Sprintf("%s: %s, back %s", what, stopAt, at()))
	log.Info("soak: fault: redis is back")

	if err := sleepUntil(start.Add(d*6/10 - receiverLead - failWindow)); err != nil {
		return timeline, err
	}
	log.Info("soak: fault: webhook receiver fails first arrivals")
	failAt := at()
	env.hooks.failFirstArrivals(true)
	if err := sleepCtx(ctx, failWindow); err != nil {
		return timeline, err
	}
	log.Info("soak: fault: webhook receiver unreachable")
	downAt := at()
	env.hooks.failFirstArrivals(false)
	env.hooks.down()
	if err := sleepCtx(ctx, receiverLead); err != nil {
		return timeline, err
	}
	log.Info("soak: fault: restarting postgres")
	pgAt := at()
	what, err = env.pg.restart(ctx, postgresOutage)
	if err != nil {
		return timeline, fmt.Errorf("restart postgres: %w", err)
	}
	if what == "" {
		timeline = append(timeline, "postgres NOT restarted (shared server; -restart-shared-postgres not given)")
	} else {
		timeline = append(timeline, fmt.Sprintf("postgres %s: %s, back %s", what, pgAt, at()))
	}
	log.Info("soak: fault: postgres is back")
	if err := sleepCtx(ctx, receiverLag); err != nil {
		return timeline, err
	}
	if err := env.hooks.up(); err != nil {
		return timeline, fmt.Errorf("webhook receiver: listen again: %w", err)
	}
	timeline = append(timeline, fmt.Sprintf("webhook receiver answered 500 to half the first arrivals %s to %s, refused connections %s to %s",
		failAt, downAt, downAt, at()))
	return timeline, nil
}
