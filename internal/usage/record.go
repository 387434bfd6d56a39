package usage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/usertext"
)

// Event is one usage report from a host app.
type Event struct {
	Meter    string
	Quantity int64
	// IdempotencyKey names the event: the first event with a key that
	// counts is the one stored; any later one with the same key, in the
	// same call or another, is a duplicate. A copy refused (over a hard
	// limit, below zero) leaves the key free for the next.
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
	CodeTimestampTooOld       = "TIMESTAMP_TOO_OLD"
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
	org      string
	meter    string
	key      string
	endpoint string
	quantity int64
	at       time.Time
	limit    plans.Limit
	// since, for a back-dated event only (backdated.go), is its meter's
	// limit under each plan the organisation was on from the event's time
	// on; nil otherwise, and then limit judges every day.
	since []limitSpan
	total rollupKey // the period rollup it counts in
	// claimed is set by insertEvents on the events whose keys it claimed.
	claimed bool
}

func (p *pending) eventID() eventID   { return eventID{p.org, p.key} }
func (p *pending) totalID() counterID { return counterID{p.org, p.total} }

// Record counts a batch of events. Each event is judged on its own: invalid
// ones and those a hard limit refuses are listed in Rejected and the others
// are counted. Everything counted is durable when Record returns.
//
// A quantity of zero is accepted: it counts nothing but claims its key, so a
// host can report "a call that used no tokens" without special cases.
//
// Calls that arrive while a commit is in flight are committed together by
// the next one (see groupcommit.go), each judged as if alone, in arrival
// order. When that commit fails the call fails with UNAVAILABLE (retryable)
// and none of its events is stored.
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
	// A key repeated in the call stays in the batch: the group judges each
	// copy in order, as it judges copies from different calls, so a later
	// copy is a duplicate only if an earlier one counted (one refused for
	// the limit or for going below zero leaves its key free).
	batch := make([]pending, 0, len(events))
	named := map[string]plans.Meter{}
	for i, e := range events {
		m, known := s.catalog.Meter(e.Meter)
		if known {
			named[m.Name] = m
		}
		p, rej := s.check(i, orgID, e, m, known, plan, now)
		if rej != nil {
			res.Rejected = append(res.Rejected, *rej)
			continue
		}
		batch = append(batch, p)
	}
	if err := s.limitsSince(ctx, orgID, batch, now); err != nil {
		return RecordResult{}, fmt.Errorf("record usage for org %s: %w", orgID, err)
	}
	report := make([]rollupKey, 0, len(named))
	for _, m := range named {
		report = append(report, keyOf(m.Name, periodStart(m.Reset, now)))
	}

	if err := ctx.Err(); err != nil { // gone before its group: spare the database
		return RecordResult{}, fmt.Errorf("record usage for org %s: %w", orgID, err)
	}
	req := &request{org: orgID, batch: batch, report: report}
	if err := s.group.submit(ctx, req); err != nil {
		return RecordResult{}, fmt.Errorf("record usage for org %s: %w", orgID, err)
	}
	if req.unchecked != nil {
		return RecordResult{}, &apperr.Error{
			Code: apperr.Unavailable,
			Message: "usage was recorded, but events whose idempotency keys were already counted could not be compared with the events first counted under them;" +
				" retry the call with the same idempotency keys (events already counted are answered as duplicates)",
			Extensions: map[string]any{"retryable": true},
			Err:        fmt.Errorf("record usage for org %s: %w", orgID, req.unchecked),
		}
	}
	out := req.out

	res.Accepted = out.accepted
	res.Duplicates += out.duplicates
	res.Rejected = append(res.Rejected, out.rejected...)
	slices.SortFunc(res.Rejected, func(a, b Rejection) int { return cmp.Compare(a.Index, b.Index) })
	for _, m := range s.catalog.Meters() {
		if _, ok := named[m.Name]; ok {
			used := out.usage[keyOf(m.Name, periodStart(m.Reset, now))]
			res.Usage = append(res.Usage, meterUsage(plan, m, used, now))
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
func (s *Service) check(i int, orgID string, e Event, m plans.Meter, known bool, plan plans.Plan, now time.Time) (pending, *Rejection) {
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
	case !store.StorableText(key) || !usertext.Printable(key):
		// Listed back by usageEvents: the rule of every text a person
		// reads, so two keys that look the same are the same key.
		return reject(CodeInvalidKey, "idempotencyKey must be UTF-8 text without control or invisible formatting characters")
	}
	if code, msg := endpointProblem(endpoint); code != "" {
		return reject(code, "%s", msg)
	}
	at := now
	if e.Timestamp != nil {
		at = e.Timestamp.UTC()
	}
	if at.After(now.Add(FutureSkew)) {
		return reject(CodeTimestampInFuture, "timestamp %s is more than %d minutes ahead of the server clock (%s)",
			at.Format(time.RFC3339), int(FutureSkew/time.Minute), now.Format(time.RFC3339))
	}
	if m.Reset == plans.Monthly && at.Before(clock.MonthStart(now)) {
		return reject(CodeTimestampBeforePeriod, "timestamp %s is before the current period of %s, which began %s; past periods are closed",
			at.Format(time.RFC3339), m.Name, clock.MonthStart(now).Format(time.RFC3339))
	}
	if at.Before(earliest) { // the reports refuse to look that far back
		return reject(CodeTimestampTooOld, "timestamp %s is before %s; Tollgate keeps no usage that old",
			at.Format(time.RFC3339), earliest.Format(time.DateOnly))
	}
	return pending{
		index: i, org: orgID, meter: m.Name, key: key, endpoint: endpoint, quantity: e.Quantity, at: at,
		limit: limitOf(plan, m), total: keyOf(m.Name, periodStart(m.Reset, at)),
	}, nil
}

// endpointProblem is the one rule for an event's endpoint name (recordUsage
// and consumeUsage both reach it through check): the code and message of
// its rejection, or "" when the name is fine. An empty endpoint is no
// endpoint (the field left out).
func endpointProblem(endpoint string) (code, msg string) {
	switch {
	case utf8.RuneCountInString(endpoint) > MaxEndpointLength:
		return CodeEndpointTooLong, fmt.Sprintf("endpoint must be at most %d characters", MaxEndpointLength)
	case !usertext.Printable(endpoint):
		// Shown on the billing page and in usageByEndpoint: the rule of
		// every text a person reads (no control characters, no invisible
		// formatting that makes two labels look the same).
		return CodeInvalidEndpoint, "endpoint must be UTF-8 text without control or invisible formatting characters"
	case strings.TrimSpace(endpoint) == "" && endpoint != "":
		return CodeInvalidEndpoint, "endpoint must not be blank; leave it out for none"
	case strings.TrimSpace(endpoint) != endpoint:
		// "x " and "x" would be two rows that read as one label.
		return CodeInvalidEndpoint, "endpoint must not begin or end with whitespace"
	}
	return "", ""
}

func (s *Service) unknownMeterMessage(meter string) string {
	names := make([]string, 0, len(s.catalog.Meters()))
	for _, m := range s.catalog.Meters() {
		names = append(names, m.Name)
	}
	return fmt.Sprintf("meter %.64q does not exist; the meters are %s", meter, strings.Join(names, ", "))
}

// Codes of events refused while their group commits.
const (
	// CodeQuantityOutOfRange: counting the event would take its meter's
	// running total past the largest int64. The key stays free.
	CodeQuantityOutOfRange = "QUANTITY_OUT_OF_RANGE"
)

// outcome is what a group commit did with one Record call's events.
type outcome struct {
	accepted, duplicates int
	rejected             []Rejection
	// refusal is the first quota refusal, returned when all events were
	// refused.
	refusal      *apperr.Error
	quotaRefused int
	// usage is each reported period total right after this call's events,
	// as if the calls of the group had committed one by one in arrival
	// order.
	usage map[rollupKey]int64
	// published are the period totals of this organisation that the call
	// named or added to, as committed, for the Redis mirror.
	published map[rollupKey]counter
}

func (o *outcome) reject(p *pending, code, format string, args ...any) {
	o.rejected = append(o.rejected, Rejection{Index: p.index, Code: code, Message: fmt.Sprintf(format, args...)})
}

// refuse records an event refused because used plus it would pass limit.
func (o *outcome) refuse(p *pending, limit int64, used int64, on string) {
	msg := LimitMessage(p.meter, used, p.quantity, limit) + on
	o.reject(p, CodeUsageLimitExceeded, "%s", msg)
	o.quotaRefused++
	if o.refusal == nil {
		ext := map[string]any{"meter": p.meter, "used": used, "requested": p.quantity, "limit": limit,
			"remaining": max(limit-used, 0)}
		if p.limit.Reset != plans.Never {
			ext["resetAt"] = clock.MonthEnd(p.total.periodStart())
		}
		o.refusal = &apperr.Error{Code: apperr.UsageLimitExceeded, Message: msg, Extensions: ext}
	}
}

// LimitMessage is the one wording of a refusal by a hard limit, for
// recordUsage's per-event rejections and whole-call error and for the
// host middleware's 402: what is used now, what was asked for, the limit.
func LimitMessage(meter string, used, requested, limit int64) string {
	return fmt.Sprintf("%s would exceed the limit: %d used + %d requested > %d", meter, used, requested, limit)
}

// writeGroup writes a group of Record calls in one transaction: claim the
// keys, lock every period total the group adds to, judge each call's events
// in arrival order against the locked totals, and add what was accepted to
// the rollups. The database stays the arbiter of hard limits, for
// concurrent groups on this replica or another.
//
// On Postgres the calls of organisations none of whose events subtracts
// and none of whose totals was lately found near a hard limit are usually
// written by one statement instead (oneshot.go), and the other
// organisations' calls by the transaction beside it: the two parts share no
// key, total or rollup row, so neither waits for the other, and one
// organisation at its hard limit does not send every organisation grouped
// with it the slow way. When the statement undoes itself (a total too close
// to a hard limit, an alert threshold crossed), its part is written by a
// transaction too. A part that fails fails only its own calls. Every
// transaction waits for the groups taken before its own to finish, and
// every statement goes in its turn (groupcommit.go, turn).
func (s *Service) writeGroup(ctx context.Context, t *turn, group []*request) error {
	now := s.clock.Now()
	if s.db.Dialect != store.Postgres || s.group.hooks.written != nil || nearMonthBoundary(now) {
		return s.writeGroupInTurn(ctx, t, group, now)
	}
	fast, slow := s.splitGroup(group, now)
	if len(fast) == 0 {
		return s.writeGroupInTurn(ctx, t, slow, now)
	}
	var slowErr error
	var wg sync.WaitGroup
	if len(slow) > 0 {
		// On a goroutine of its own, so a panic must be caught here.
		wg.Go(func() { slowErr = panicAsError(func() error { return s.writeGroupInTurn(ctx, t, slow, now) }) })
	}
	err := s.writeFast(ctx, t, fast, now, len(slow) == 0)
	wg.Wait()
	switch {
	case err != nil && (slowErr != nil || len(slow) == 0):
		return errors.Join(err, slowErr)
	case err != nil:
		return &partFailed{requests: fast, err: err}
	case slowErr != nil:
		return &partFailed{requests: slow, err: slowErr}
	}
	return nil
}

// writeFast writes the calls of a group that one statement may write
// (alone: the group has no other part) through the database's pipe, in
// the group's turn, and in a transaction when the statement undoes itself.
// A statement undone by a conflict or out of turn is sent again once the
// groups before it have finished, when nothing is in flight before it.
func (s *Service) writeFast(ctx context.Context, t *turn, fast []*request, now time.Time, alone bool) error {
	resync := false
	for attempt := 1; ; attempt++ {
		err := s.writeGroupAtOnce(ctx, t, fast, now, alone, resync)
		switch {
		case err == nil:
			writtenByStatement.Add(float64(len(fast)))
			return nil
		case errors.Is(err, errLimitInReach) || errors.Is(err, errAlertCrossed):
			return s.writeGroupInTurn(ctx, t, fast, now)
		case attempt < conflictAttempts && (errors.Is(err, store.ErrOutOfTurn) || store.IsConflict(err)):
			if err := t.mayJudge(ctx); err != nil {
				return err
			}
			resync = true
		default:
			return err
		}
	}
}

// writeGroupInTurn writes group in one transaction that judges its calls
// after those of every group taken before it. It claims the group's keys
// and stores its events beside those groups, and waits for them to finish
// only before it locks the period totals: a big group's inserts then
// overlap the groups ahead instead of following them. It waits before the
// transaction instead when a group ahead still in flight has one of its
// keys (that group would wait on this transaction's claim while this waits
// for it) or near a month boundary, where the transaction first takes the
// boundary lock, which a group ahead may need.
func (s *Service) writeGroupInTurn(ctx context.Context, t *turn, group []*request, now time.Time) error {
	claimFirst := !nearMonthBoundary(now) && !t.sharesKey(group)
	if !claimFirst {
		if err := s.waitTurn(ctx, t, group); err != nil {
			return err
		}
	}
	err := retryConflicts(ctx, func() error {
		return s.db.Tx(ctx, func(tx *gorm.DB) error {
			return s.writeGroupTx(ctx, rollups{tx: tx, dialect: s.db.Dialect, now: now, endpointCap: s.endpointCap}, group, func() error {
				if !claimFirst {
					return nil
				}
				return s.waitTurn(ctx, t, group)
			})
		})
	})
	if err == nil {
		writtenByTransaction.Add(float64(len(group)))
	}
	return err
}

// waitTurn returns once every group taken before t has finished.
func (s *Service) waitTurn(ctx context.Context, t *turn, group []*request) error {
	if s.group.hooks.waits != nil {
		s.group.hooks.waits(group)
	}
	return t.mayJudge(ctx)
}

// splitGroup divides a group by organisation, each part in arrival order:
// the calls that may be written by one statement (fast) and the others. An
// organisation's calls stay together, as they may share keys and totals
// that one write must judge in order.
func (s *Service) splitGroup(group []*request, now time.Time) (fast, slow []*request) {
	var slowOrgs map[string]bool
	for _, req := range group {
		if !s.mayBeFast(req, now) {
			if slowOrgs == nil {
				slowOrgs = map[string]bool{}
			}
			slowOrgs[req.org] = true
		}
	}
	if slowOrgs == nil {
		return group, nil
	}
	for _, req := range group {
		if slowOrgs[req.org] {
			slow = append(slow, req)
		} else {
			fast = append(fast, req)
		}
	}
	return fast, slow
}

// writeGroupTx is the transaction of writeGroupInTurn; inTurn returns once
// the group may judge its calls.
func (s *Service) writeGroupTx(ctx context.Context, r rollups, group []*request, inTurn func() error) error {
	plan := planGroup(group)
	if err := r.guardMonthBoundary(); err != nil {
		return err
	}
	// Claim the keys before locking the period totals, so the totals
	// (which every group of the organisation needs) are held only for the
	// short rest of the transaction, not across the claim's index probes
	// and inserts.
	if err := r.insertEvents(plan.claims); err != nil {
		return err
	}
	counted, err := r.readKeyPayloads(plan.claims)
	if err != nil {
		return err
	}
	if err := inTurn(); err != nil {
		return err
	}
	running, err := r.lockTotals(plan.written)
	if err != nil {
		return err
	}
	history, err := r.readHistory(backdatedSince(group, r.now))
	if err != nil {
		return err
	}
	accepted, sums := settle(group, plan.first, counted, running, history, true)
	// A claim whose event was refused is released, so a retry later can
	// still count; when a later call of the group had the same key
	// accepted, its event replaces the claim.
	var release, replace []*pending
	for _, p := range plan.claims {
		if !p.claimed {
			continue
		}
		id := p.eventID()
		if got, ok := accepted[id]; !ok || got != p {
			release = append(release, p)
			if ok {
				replace = append(replace, got)
			}
		}
	}
	if err := r.deleteEvents(release); err != nil {
		return err
	}
	if err := r.insertEvents(replace); err != nil {
		return err
	}
	changed, err := r.add(sums)
	if err != nil {
		return err
	}
	if err := s.fireAlerts(ctx, r, group, sums.totals, changed); err != nil {
		return err
	}
	if s.group.hooks.written != nil {
		if err := s.group.hooks.written(group); err != nil {
			return err
		}
	}
	return s.readBack(r.tx, group, changed)
}

// groupPlan is what a group writes: the first occurrence of each key, in
// arrival order, which claims it; those claims in key order, so two groups
// that share keys wait on each other in one order (a deadlock, should
// Postgres insert them in another, is retried like any other, retry.go);
// and the period totals the group may add to.
type groupPlan struct {
	first   map[eventID]*pending
	claims  []*pending
	written []counterID
}

func planGroup(group []*request) groupPlan {
	events := 0
	for _, req := range group {
		events += len(req.batch)
	}
	plan := groupPlan{first: make(map[eventID]*pending, events), claims: make([]*pending, 0, events)}
	seenTotal := map[counterID]struct{}{}
	for _, req := range group {
		for i := range req.batch {
			p := &req.batch[i]
			if _, ok := plan.first[p.eventID()]; !ok {
				plan.first[p.eventID()] = p
				plan.claims = append(plan.claims, p)
			}
			if _, ok := seenTotal[p.totalID()]; !ok {
				seenTotal[p.totalID()] = struct{}{}
				plan.written = append(plan.written, p.totalID())
			}
		}
	}
	slices.SortFunc(plan.claims, func(a, b *pending) int {
		return cmp.Or(strings.Compare(a.org, b.org), strings.Compare(a.key, b.key))
	})
	return plan
}

// claimedSums adds up the events whose keys were claimed: what the group
// adds when every one of them counts.
func (g groupPlan) claimedSums() aggregate {
	var sums aggregate
	for _, p := range g.claims {
		if p.claimed {
			sums.add(p)
		}
	}
	return sums
}

// foundTotals is each period total as the group found it, from the totals
// after the group added sums.
func foundTotals(after map[counterID]counter, sums aggregate) map[counterID]int64 {
	running := make(map[counterID]int64, len(after))
	for id, c := range after {
		running[id] = c.used - sums.totals[id]
	}
	return running
}

// settle gives each call of the group its answer, in arrival order, from
// the period totals as the group found them (running, which it advances):
// an event whose key another event claimed, earlier in the group or before
// it, is a duplicate when it is that event again and is rejected
// (CodeKeyReused) otherwise, judged against the earlier event of the group
// or against what the key's row says (counted, readKeyPayloads); the others are judged one by one when judgeEach is
// set, and all count otherwise (the totals were below their ceilings). A
// running total with back-dated events is judged against its history too,
// which judge advances (backdated.go). It returns the events counted, by
// key, and their sums when judged.
func settle(group []*request, first map[eventID]*pending, counted map[eventID]keyPayload, running map[counterID]int64, history map[counterID]*dayHistory, judgeEach bool) (map[eventID]*pending, aggregate) {
	accepted := make(map[eventID]*pending, len(first))
	var judged aggregate
	for _, req := range group {
		req.out = outcome{usage: make(map[rollupKey]int64, len(req.report))}
		for i := range req.batch {
			p := &req.batch[i]
			if !first[p.eventID()].claimed {
				if !req.out.rejectReuse(p, counted[p.eventID()]) {
					req.out.duplicates++
				}
				continue
			}
			if a, ok := accepted[p.eventID()]; ok {
				if !req.out.rejectReuse(p, payloadOf(a)) {
					req.out.duplicates++
				}
				continue
			}
			if !judgeEach {
				// The statement committed each total within its
				// ceiling, so this stays below it; checked all the same.
				running[p.totalID()] = saturatingAdd(running[p.totalID()], p.quantity)
			} else if next, ok := judge(&req.out, p, running[p.totalID()], history[p.totalID()]); ok {
				running[p.totalID()] = next
				judged.add(p)
			} else {
				continue
			}
			accepted[p.eventID()] = p
			req.out.accepted++
		}
		for _, k := range req.report {
			if v, ok := running[counterID{req.org, k}]; ok {
				req.out.usage[k] = v
			}
		}
	}
	return accepted, judged
}

// mayBeFast reports whether a call may be written by one statement: none
// of its events subtracts (a running total must be judged event by event
// not to go below zero) or is back-dated on a running total (it is judged
// against the days after it too), and none of its totals was lately found
// too close to a hard limit for it.
func (s *Service) mayBeFast(req *request, now time.Time) bool {
	for i := range req.batch {
		p := &req.batch[i]
		if p.quantity < 0 || backdated(p, now) {
			return false
		}
		if _, near := s.nearLimit.Get(p.totalID()); near {
			return false
		}
	}
	return true
}

// publishGroup writes the Redis mirror of a committed group: once per
// organisation, in one round trip, before any of its callers is answered,
// so a caller's next usageGate, on any replica, sees what it recorded.
func (s *Service) publishGroup(ctx context.Context, group []*request) {
	byOrg := map[string]map[rollupKey]counter{}
	for _, req := range group {
		if req.err != nil { // its part of the group failed: nothing to mirror
			continue
		}
		if byOrg[req.org] == nil {
			byOrg[req.org] = map[rollupKey]counter{}
		}
		maps.Copy(byOrg[req.org], req.out.published)
	}
	s.counters.publishAll(ctx, byOrg)
}

// judge decides an event whose key is new against the current value of its
// period total and, for a running total whose history the group read (h),
// against the total at the end of every day from the event's own on (see
// backdated.go). It returns the total after the event when it is accepted
// and records why not otherwise.
func judge(out *outcome, p *pending, cur int64, h *dayHistory) (int64, bool) {
	lo, hi := point{total: cur}, point{total: cur}
	day := dayOf(p.at).Unix()
	if h != nil {
		lo, hi = h.extremes(day, cur)
	}
	// on names the day whose total decided, when it is not the current one.
	on := func(pt point) string {
		if pt.total == cur {
			return ""
		}
		return fmt.Sprintf(" at the end of %s (the event is dated %s)",
			time.Unix(pt.day, 0).UTC().Format(time.DateOnly), p.at.Format(time.RFC3339))
	}
	if p.quantity < 0 && p.limit.Reset == plans.Never && lo.total+p.quantity < 0 {
		// A running total (bytes stored) cannot be negative; a delete with
		// no upload behind it would otherwise bank headroom under a hard
		// limit. The key is released, so the delete can be retried once its
		// upload is counted.
		out.reject(p, CodeInvalidQuantity, "%s would go below zero: %d counted%s, this event subtracts %d", p.meter, lo.total, on(lo), -p.quantity)
		return 0, false
	}
	next, ok := checkedAdd(cur, p.quantity)
	over, limit := hi, p.limit
	if h != nil && p.since != nil {
		over, limit = h.overLimit(p, cur)
	}
	_, fits := checkedAdd(hi.total, p.quantity)
	switch code := admission(limit, over.total, p.quantity); {
	case !ok || !fits:
		out.reject(p, CodeQuantityOutOfRange, "%s total would pass the largest countable value (%d): %d counted%s, this event adds %d",
			p.meter, int64(math.MaxInt64), hi.total, on(hi), p.quantity)
		return 0, false
	case code == CodeUsageLimitExceeded:
		out.refuse(p, limit.Limit, over.total, on(over))
		return 0, false
	}
	if h != nil {
		h.add(day, p.quantity)
	}
	return next, true
}

// readBack gives each call of the group the period totals it reports and
// those the Redis mirror is sent, as committed: changed holds those the
// group wrote; any other is read (one query, often none).
func (s *Service) readBack(tx *gorm.DB, group []*request, changed map[counterID]counter) error {
	values, err := readTotals(tx, unwritten(group, func(id counterID) bool { _, ok := changed[id]; return ok }))
	if err != nil {
		return err
	}
	maps.Copy(values, changed)
	fillOutcomes(group, values)
	return nil
}

// unwritten lists the period totals the group's calls report or add to that
// written says the group did not write.
func unwritten(group []*request, written func(counterID) bool) []counterID {
	var missing []counterID
	for _, req := range group {
		for _, k := range req.report {
			if !written(counterID{req.org, k}) {
				missing = append(missing, counterID{req.org, k})
			}
		}
		for i := range req.batch {
			if !written(req.batch[i].totalID()) {
				missing = append(missing, req.batch[i].totalID())
			}
		}
	}
	return missing
}

// fillOutcomes gives each call the values of the totals it reports that it
// did not see change, and the totals the Redis mirror is sent.
func fillOutcomes(group []*request, values map[counterID]counter) {
	for _, req := range group {
		req.out.published = map[rollupKey]counter{}
		for _, k := range req.report {
			if _, ok := req.out.usage[k]; !ok {
				req.out.usage[k] = values[counterID{req.org, k}].used
			}
			req.out.published[k] = values[counterID{req.org, k}]
		}
		for i := range req.batch {
			id := req.batch[i].totalID()
			req.out.published[id.rollupKey] = values[id]
		}
	}
}
