package usage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
)

// Event is one usage report from a host app.
type Event struct {
	Meter    string
	Quantity int64
	// IdempotencyKey names the event: the first event with a key counts,
	// any later one with the same key is a duplicate.
	IdempotencyKey string
	// Endpoint is what was called, e.g. "POST /v1/search"; optional.
	Endpoint string
	// Timestamp is when it happened; nil means now.
	Timestamp *time.Time
}

// Codes of rejected events.
const (
	CodeUnknownMeter          = "UNKNOWN_METER"
	CodeInvalidQuantity       = "INVALID_QUANTITY"
	CodeMissingKey            = "MISSING_IDEMPOTENCY_KEY"
	CodeKeyTooLong            = "KEY_TOO_LONG"
	CodeInvalidKey            = "INVALID_IDEMPOTENCY_KEY"
	CodeEndpointTooLong       = "ENDPOINT_TOO_LONG"
	CodeInvalidEndpoint       = "INVALID_ENDPOINT"
	CodeTimestampInFuture     = "TIMESTAMP_IN_FUTURE"
	CodeTimestampBeforePeriod = "TIMESTAMP_BEFORE_PERIOD"
	CodeUsageLimitExceeded    = string(apperr.UsageLimitExceeded)
)

// Rejection is an event that was not counted, and why.
type Rejection struct {
	// Index is the event's position in the request.
	Index   int
	Code    string
	Message string
}

// RecordResult is what a Record call did.
type RecordResult struct {
	// Accepted events were newly counted.
	Accepted int
	// Duplicates repeated a key already counted, earlier in the same call or
	// before.
	Duplicates int
	// Rejected events were not counted, in request order.
	Rejected []Rejection
	// Usage is the current period's usage of every meter the call named.
	Usage []MeterUsage
}

// pending is a valid event on its way to the database.
type pending struct {
	index    int
	meter    string
	key      string
	endpoint string
	quantity int64
	at       time.Time
	limit    plans.Limit
	total    rollupKey // the period rollup it counts in
}

// Record counts a batch of events. Each event is judged on its own: invalid
// ones and those a hard limit refuses are listed in Rejected and the others
// are counted. Everything counted is durable when Record returns.
//
// A quantity of zero is accepted: it counts nothing but claims its key, so a
// host can report "a call that used no tokens" without special cases.
//
// An empty or oversize batch is apperr.FieldErrors and writes nothing. When
// every event is refused for quota the call fails with USAGE_LIMIT_EXCEEDED
// carrying meter, current and limit (the result is still filled in).
func (s *Service) Record(ctx context.Context, orgID string, events []Event) (RecordResult, error) {
	var fe apperr.FieldErrors
	switch {
	case len(events) == 0:
		fe.Add("input.events", "REQUIRED", "send at least one event")
	case len(events) > MaxBatch:
		fe.Add("input.events", "TOO_LONG", fmt.Sprintf("send at most %d events per call, not %d", MaxBatch, len(events)))
	}
	if err := fe.Err(); err != nil {
		rejectedEvents.Add(float64(len(events)))
		return RecordResult{}, err
	}
	plan, _, err := s.plans.PlanOf(ctx, orgID)
	if err != nil {
		return RecordResult{}, fmt.Errorf("record usage for org %s: %w", orgID, err)
	}
	now := s.clock.Now()

	var res RecordResult
	batch := make([]pending, 0, len(events))
	seen := make(map[string]struct{}, len(events))
	named := map[string]plans.Meter{}
	for i, e := range events {
		m, known := s.catalog.Meter(e.Meter)
		if known {
			named[m.Name] = m
		}
		p, rej := s.check(i, e, m, known, plan, now)
		if rej != nil {
			res.Rejected = append(res.Rejected, *rej)
			continue
		}
		if _, dup := seen[p.key]; dup {
			res.Duplicates++
			continue
		}
		seen[p.key] = struct{}{}
		batch = append(batch, p)
	}
	report := make([]rollupKey, 0, len(named))
	for _, m := range named {
		report = append(report, keyOf(m.Name, periodStart(m.Reset, now)))
	}

	out, err := s.commit(ctx, orgID, batch, report, now)
	if err != nil {
		return RecordResult{}, fmt.Errorf("record usage for org %s: %w", orgID, err)
	}
	s.counters.publish(ctx, orgID, out.totals)

	res.Accepted = out.accepted
	res.Duplicates += out.duplicates
	res.Rejected = append(res.Rejected, out.rejected...)
	slices.SortFunc(res.Rejected, func(a, b Rejection) int { return cmp.Compare(a.Index, b.Index) })
	for _, m := range s.catalog.Meters() {
		if _, ok := named[m.Name]; ok {
			used := out.totals[keyOf(m.Name, periodStart(m.Reset, now))].used
			res.Usage = append(res.Usage, MeterUsage{Meter: m.Name, Used: used, Limit: limitOf(plan, m)})
		}
	}
	countRecorded(res)
	if out.quotaRefused > 0 && out.quotaRefused == len(events) { // every event was refused for quota
		return res, out.refusal
	}
	return res, nil
}

// check validates one event, returning it ready to write or why it is
// rejected.
func (s *Service) check(i int, e Event, m plans.Meter, known bool, plan plans.Plan, now time.Time) (pending, *Rejection) {
	reject := func(code, format string, args ...any) (pending, *Rejection) {
		return pending{}, &Rejection{Index: i, Code: code, Message: fmt.Sprintf(format, args...)}
	}
	key, endpoint := e.IdempotencyKey, e.Endpoint
	switch {
	case !known:
		return reject(CodeUnknownMeter, "%s", s.unknownMeterMessage(e.Meter))
	case e.Quantity < 0 && m.Reset != plans.Never:
		return reject(CodeInvalidQuantity, "quantity %d is negative, but %s resets monthly; only meters that never reset take decreases", e.Quantity, m.Name)
	case e.Quantity > MaxQuantity || e.Quantity < -MaxQuantity:
		return reject(CodeInvalidQuantity, "quantity must be between %d and %d", -MaxQuantity, MaxQuantity)
	case strings.TrimSpace(key) == "":
		return reject(CodeMissingKey, "idempotencyKey is required")
	case utf8.RuneCountInString(key) > MaxKeyLength:
		return reject(CodeKeyTooLong, "idempotencyKey must be at most %d characters", MaxKeyLength)
	case !storable(key):
		return reject(CodeInvalidKey, "idempotencyKey must be UTF-8 text without NUL characters")
	case utf8.RuneCountInString(endpoint) > MaxEndpointLength:
		return reject(CodeEndpointTooLong, "endpoint must be at most %d characters", MaxEndpointLength)
	case !storable(endpoint):
		return reject(CodeInvalidEndpoint, "endpoint must be UTF-8 text without NUL characters")
	}
	at := now
	if e.Timestamp != nil {
		at = e.Timestamp.UTC()
	}
	if at.After(now.Add(FutureSkew)) {
		return reject(CodeTimestampInFuture, "timestamp %s is more than %s ahead of the server clock (%s)",
			at.Format(time.RFC3339), FutureSkew, now.Format(time.RFC3339))
	}
	if m.Reset == plans.Monthly && at.Before(clock.MonthStart(now)) {
		return reject(CodeTimestampBeforePeriod, "timestamp %s is before the current period of %s, which began %s; past periods are closed",
			at.Format(time.RFC3339), m.Name, clock.MonthStart(now).Format(time.RFC3339))
	}
	return pending{
		index: i, meter: m.Name, key: key, endpoint: endpoint, quantity: e.Quantity, at: at,
		limit: limitOf(plan, m), total: keyOf(m.Name, periodStart(m.Reset, at)),
	}, nil
}

// storable reports whether both databases can store s as text.
func storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func (s *Service) unknownMeterMessage(meter string) string {
	names := make([]string, 0, len(s.catalog.Meters()))
	for _, m := range s.catalog.Meters() {
		names = append(names, m.Name)
	}
	return fmt.Sprintf("meter %.64q does not exist; the meters are %s", meter, strings.Join(names, ", "))
}

// outcome is what one Record transaction did.
type outcome struct {
	accepted, duplicates int
	rejected             []Rejection
	// refusal is the first quota refusal, returned when all events were
	// refused.
	refusal      *apperr.Error
	quotaRefused int
	// totals are the period rollups after the transaction.
	totals map[rollupKey]counter
}

func (o *outcome) refuse(p pending, used int64) {
	o.rejected = append(o.rejected, Rejection{
		Index: p.index, Code: CodeUsageLimitExceeded,
		Message: fmt.Sprintf("%s limit reached: %d of %d used, this event needs %d", p.meter, used, p.limit.Limit, p.quantity),
	})
	o.quotaRefused++
	if o.refusal == nil {
		o.refusal = &apperr.Error{
			Code:       apperr.UsageLimitExceeded,
			Message:    fmt.Sprintf("%s limit reached for the current period", p.meter),
			Extensions: map[string]any{"meter": p.meter, "current": used, "limit": p.limit.Limit},
		}
	}
}

// commit writes the batch in one transaction: claim the keys, judge hard
// limits under the rollup row lock, and add what was accepted to the rollups.
// report names the rollups to read back besides those written.
func (s *Service) commit(ctx context.Context, orgID string, batch []pending, report []rollupKey, now time.Time) (outcome, error) {
	var out outcome
	err := retryConflicts(ctx, func() error {
		return s.db.Tx(ctx, func(tx *gorm.DB) error {
			out = outcome{}
			r := rollups{tx: tx, dialect: s.db.Dialect, org: orgID, now: now}
			var sums aggregate
			if len(batch) > 0 {
				// Lock the hard-limited totals first: concurrent batches on
				// the same meter then queue here, before claiming any keys.
				used, err := r.lockTotals(hardLimited(batch))
				if err != nil {
					return err
				}
				fresh, err := r.insertEvents(batch)
				if err != nil {
					return err
				}
				var refused []string
				for _, p := range batch {
					if _, ok := fresh[p.key]; !ok {
						out.duplicates++
						continue
					}
					if cur, locked := used[p.total]; locked {
						if p.quantity < 0 && p.limit.Reset == plans.Never && cur+p.quantity < 0 {
							// A running total (bytes stored) cannot be
							// negative; a delete with no upload behind it
							// would otherwise bank headroom under a hard
							// limit. The key is released, so the delete can
							// be retried once its upload is counted.
							out.rejected = append(out.rejected, Rejection{Index: p.index, Code: CodeInvalidQuantity,
								Message: fmt.Sprintf("%s would go below zero: %d counted, this event subtracts %d", p.meter, cur, -p.quantity)})
							refused = append(refused, p.key)
							continue
						}
						if !admits(p.limit, cur, p.quantity) {
							out.refuse(p, cur)
							refused = append(refused, p.key)
							continue
						}
						used[p.total] = cur + p.quantity
					}
					out.accepted++
					sums.add(p)
				}
				// Refused events were inserted only to learn which keys were
				// new; unclaim them so a retry later can still count.
				if err := r.deleteEvents(refused); err != nil {
					return err
				}
				if err := r.add(sums); err != nil {
					return err
				}
			}
			totals, err := readCounters(tx, orgID, append(report, sums.totalKeys()...))
			out.totals = totals
			return err
		})
	})
	return out, err
}

// hardLimited lists the period rollups of the batch that must be judged
// under a lock: those a hard limit caps, and running totals that an event
// decreases (which must not go below zero).
func hardLimited(batch []pending) []rollupKey {
	var keys []rollupKey
	seen := map[rollupKey]struct{}{}
	for _, p := range batch {
		capped := p.limit.Hard && !p.limit.Unlimited
		decreased := p.quantity < 0 && p.limit.Reset == plans.Never
		if !capped && !decreased {
			continue
		}
		if _, ok := seen[p.total]; !ok {
			seen[p.total] = struct{}{}
			keys = append(keys, p.total)
		}
	}
	return keys
}
