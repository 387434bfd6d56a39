package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// A hard limit under phase 1's faults: on each organisation whose plan has
// a hard hardMeter limit, hardConsumers clients call consumeUsage (check
// and record in one step) until the end of the load, with quantities of 1
// to hardMaxUnits, re-sending reuseShare of the keys already counted. The
// limit is small, so it is reached early and every call after is refused;
// the stored total must equal what was answered allowed and never pass the
// limit, and reaching it must fire usage.limit_reached once.

const (
	consumeUsage = `mutation Consume($in: ConsumeUsageInput!) { consumeUsage(input: $in) {
  allowed reason userErrors { field code message } } }`
	hardConsumers = 3
)

// hardTally is what one organisation's consumers were answered. Guarded by
// usageLoad.mu.
type hardTally struct {
	allowed       map[string]int64 // key → quantity, for keys answered allowed
	keys          []string         // the same keys, for re-sending
	refused       int              // answered USAGE_LIMIT_EXCEEDED
	resentRefused int              // a key answered allowed before, refused when re-sent
	other         map[string]int   // any other answer
}

// consumers is how many consumeUsage clients an organisation gets.
func (h *hardTally) consumers() int {
	if h == nil {
		return 0
	}
	return hardConsumers
}

func (l *usageLoad) runConsumer(ctx context.Context, o *usageOrg, id int) {
	rng := rand.New(rand.NewPCG(uint64(1000+id), uint64(time.Now().UnixNano())))
	seq := 0
	for time.Now().Before(l.stopAt) && ctx.Err() == nil {
		var key string
		var q int64
		l.mu.Lock()
		resend := len(o.hard.keys) > 0 && rng.Float64() < reuseShare
		if resend {
			key = o.hard.keys[rng.IntN(len(o.hard.keys))]
			q = o.hard.allowed[key]
		}
		l.mu.Unlock()
		if !resend {
			seq++
			key = fmt.Sprintf("%s-%s-t%d-%06d", l.env.runID, o.name, id, seq)
			q = 1 + rng.Int64N(hardMaxUnits)
		}
		allowed, reason, ok := l.consume(ctx, rng, o, key, q)
		if !ok {
			return
		}
		l.mu.Lock()
		switch {
		case allowed:
			if _, known := o.hard.allowed[key]; !known {
				o.hard.allowed[key] = q
				o.hard.keys = append(o.hard.keys, key)
			}
		case reason == "USAGE_LIMIT_EXCEEDED" && resend:
			o.hard.resentRefused++
		case reason == "USAGE_LIMIT_EXCEEDED":
			o.hard.refused++
		default:
			o.hard.other[reason]++
		}
		l.mu.Unlock()
	}
}

// consume sends one consumeUsage, retrying any failure with the same key
// and quantity, and reports the answer; ok is false when it gave up.
func (l *usageLoad) consume(ctx context.Context, rng *rand.Rand, o *usageOrg, key string, q int64) (allowed bool, reason string, ok bool) {
	body := gqlBody(consumeUsage, map[string]any{"in": map[string]any{"meter": hardMeter, "quantity": q, "idempotencyKey": key}})
	first := time.Now()
	backoff := 50 * time.Millisecond
	for {
		if ctx.Err() != nil {
			return false, "", false
		}
		if time.Since(first) > retryBudget {
			l.abandoned.Add(1)
			return false, "", false
		}
		procs := l.env.processes()
		r, err := postGraphQL(ctx, l.client, procs[rng.IntN(len(procs))].url, map[string]string{"X-API-Key": o.secret}, body)
		failure := r.failure(err)
		var out struct {
			ConsumeUsage struct {
				Allowed    bool
				Reason     *string
				UserErrors []struct{ Field, Code, Message string }
			}
		}
		if failure == "" {
			if err := json.Unmarshal(r.Data, &out); err != nil {
				failure = "undecodable payload"
			} else if len(out.ConsumeUsage.UserErrors) > 0 {
				failure = "userErrors " + out.ConsumeUsage.UserErrors[0].Code
			}
		}
		if failure == "" {
			reason := ""
			if out.ConsumeUsage.Reason != nil {
				reason = *out.ConsumeUsage.Reason
			}
			return out.ConsumeUsage.Allowed, reason, true
		}
		l.mu.Lock()
		l.fails["consumeUsage: "+failure]++
		l.mu.Unlock()
		if sleepCtx(ctx, backoff/2+time.Duration(rng.Int64N(int64(backoff)))) != nil {
			return false, "", false
		}
		backoff = min(2*backoff, time.Second)
	}
}

// verifyHard compares each hard-limited meter's stored events with what
// the consumers were answered, and records the totals for the alert check.
func (l *usageLoad) verifyHard(ctx context.Context, rep *report, phase string) error {
	var allowedUnits, storedUnits, rollups, past int64
	var allowedCalls, refused, resentRefused, lost, unanswered, limited int
	other := map[string]int{}
	for _, o := range l.orgs {
		if o.hard == nil {
			continue
		}
		limited++
		m := o.alerts.meter(hardMeter)
		stored := map[string]int64{}
		rows, err := l.env.db.Query(ctx, `SELECT idempotency_key, quantity FROM usage_events WHERE org_id = $1 AND meter = $2`, o.id, hardMeter)
		if err != nil {
			return fmt.Errorf("read usage_events: %w", err)
		}
		var sum int64
		for rows.Next() {
			var k string
			var q int64
			if err := rows.Scan(&k, &q); err != nil {
				rows.Close()
				return err
			}
			stored[k] = q
			sum += q
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read usage_events: %w", err)
		}
		var rollup int64
		if err := l.env.db.QueryRow(ctx, `SELECT COALESCE(SUM(used), 0)::bigint FROM usage_rollups WHERE org_id = $1 AND meter = $2`,
			o.id, hardMeter).Scan(&rollup); err != nil {
			return fmt.Errorf("sum usage_rollups: %w", err)
		}
		l.mu.Lock()
		for k, q := range o.hard.allowed {
			allowedUnits += q
			if _, ok := stored[k]; !ok {
				lost++
			}
		}
		for k := range stored {
			if _, ok := o.hard.allowed[k]; !ok {
				unanswered++
			}
		}
		allowedCalls += len(o.hard.allowed)
		refused += o.hard.refused
		resentRefused += o.hard.resentRefused
		for k, n := range o.hard.other {
			other[k] += n
		}
		l.mu.Unlock()
		storedUnits += sum
		rollups += rollup
		past += max(sum-m.limit, 0)
		m.total = sum
	}
	if limited == 0 {
		return nil
	}
	name := fmt.Sprintf("hard %s limit %d, %d organisations", hardMeter, hardLimit, limited)
	rep.info(phase, name+": keys allowed / calls refused", fmt.Sprintf("%d / %d", allowedCalls, refused))
	rep.check(phase, name+": units stored = units answered allowed", storedUnits, allowedUnits)
	rep.check(phase, name+": allowed keys missing from usage_events", lost, 0)
	rep.check(phase, name+": stored keys never answered allowed", unanswered, 0)
	rep.check(phase, name+": usage_rollups − SUM(quantity)", rollups-storedUnits, 0)
	rep.check(phase, name+": units past the limit", past, 0)
	rep.check(phase, name+": counted keys refused when re-sent", resentRefused, 0)
	rep.check(phase, name+": other answers", describeCounts(other), "none")
	return nil
}
