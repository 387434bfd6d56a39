package usage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// pipedCalls makes two calls on Postgres whose groups' statements are both
// in the pipe at once: the first's held behind a lock the test takes on the
// organisation's period total, the second's sent behind it. Once both are
// on their way it calls between (with the lock still held), then lets the
// lock go and returns both answers.
func pipedCalls(t *testing.T, f *fixture, org string, first, second []Event, between func()) (a, b answer) {
	t.Helper()
	f.svc.group.overlap = 1 // the second call starts a group beside the first
	sent := make(chan int, 2)
	f.svc.group.hooks.sent = func(group []*request) { sent <- len(group) }
	defer func() { f.svc.group.hooks = groupHooks{} }()

	lock := f.db.Begin()
	defer lock.Rollback()
	var locked int64
	if err := lock.Raw("SELECT used FROM usage_rollups WHERE org_id = ? AND meter = ? FOR UPDATE", org, first[0].Meter).Scan(&locked).Error; err != nil {
		t.Fatalf("lock the period total: %v", err)
	}
	wait := func(what string) {
		select {
		case <-sent:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s statement was not sent", what)
		}
	}
	firstDone, secondDone := make(chan answer, 1), make(chan answer, 1)
	go func() {
		res, err := f.svc.Record(context.Background(), org, first)
		firstDone <- answer{res, err}
	}()
	wait("the first call's")
	go func() {
		res, err := f.svc.Record(context.Background(), org, second)
		secondDone <- answer{res, err}
	}()
	wait("the second call's")
	if between != nil {
		between()
	}
	if err := lock.Rollback().Error; err != nil {
		t.Fatalf("let the lock go: %v", err)
	}
	return <-firstDone, <-secondDone
}

// filledOrg is an organisation on plan, in a fresh Postgres database, that
// has used fill api calls.
func filledOrg(t *testing.T, plan string, fill int64) (*fixture, string) {
	t.Helper()
	f := newFixture(t, testenv.OpenDB(t, store.Postgres), nil)
	org := f.org(t, plan)
	f.record(t, org, ev("api_calls", fill, "fill"))
	return f, org
}

// TestAStatementBehindOneThatUndidItselfWaitsForItsTurn: an organisation at
// 995 of its 1,000 calls (a hard limit). A call of 6 events goes first, a
// call of 3 second, both statements in the pipe. The first statement finds
// 1,001 past the limit and undoes itself, to be written in a transaction
// that judges event by event. The second, which alone would fit (998),
// must not commit before it: the first call's first 5 events are counted
// and its sixth refused, and all three of the second call's are refused.
func TestAStatementBehindOneThatUndidItselfWaitsForItsTurn(t *testing.T) {
	f, org := filledOrg(t, "free", 995)
	first, second := batch("api_calls", "first", 6), batch("api_calls", "second", 3)

	a, b := pipedCalls(t, f, org, first, second, nil)
	if a.err != nil || a.res.Accepted != 5 || len(a.res.Rejected) != 1 || a.res.Rejected[0].Index != 5 ||
		a.res.Rejected[0].Code != CodeUsageLimitExceeded {
		t.Errorf("the first call: %+v, %v; want its first 5 events counted and the sixth refused at the limit", a.res, a.err)
	}
	if b.res.Accepted != 0 || b.err != nil && apperr.CodeOf(b.err) != apperr.UsageLimitExceeded {
		t.Errorf("the second call: %+v, %v; want all three refused at the limit, after the first call", b.res, b.err)
	}
	if used := f.used(t, org, "api_calls"); used != 1000 {
		t.Errorf("used %d, want 1000", used)
	}
	if n := f.storedEvents(t, org); n != 1+5 {
		t.Errorf("%d events stored, want 6 (the fill and the first call's 5)", n)
	}
	// The pipe is in step again: the next call (of an organisation far
	// from its limit) is written by its statement.
	before, _ := groupWrites()
	if res := f.record(t, f.org(t, "starter"), ev("api_calls", 1, "after")); res.Accepted != 1 {
		t.Errorf("a call after both: %+v", res)
	}
	if after, _ := groupWrites(); after != before+1 {
		t.Error("the call after both was not written by its statement")
	}
}

// TestABrokenPipeAnswersItsCallsUnavailableAndTheNextCallsSucceed: the
// pipe's connection is terminated while two groups' statements are in it.
// Both calls are told to retry (UNAVAILABLE, retryable) and nothing of
// theirs is stored; retried, with the same keys, both count.
func TestABrokenPipeAnswersItsCallsUnavailableAndTheNextCallsSucceed(t *testing.T) {
	f, org := filledOrg(t, "starter", 1)
	db := f.db
	first, second := batch("api_calls", "first", 2), batch("api_calls", "second", 3)

	a, b := pipedCalls(t, f, org, first, second, func() {
		var n int64
		err := db.Raw(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%tollgate_pipe_turn%'`).Scan(&n).Error
		if err != nil || n != 1 {
			t.Fatalf("terminate the pipe's backend: %d terminated, %v", n, err)
		}
	})
	for i, got := range []answer{a, b} {
		if apperr.CodeOf(got.err) != apperr.Unavailable || got.res.Accepted != 0 {
			t.Errorf("call %d: %+v, %v; want UNAVAILABLE", i+1, got.res, got.err)
		}
		var ae *apperr.Error
		if !errors.As(got.err, &ae) || ae.Extensions["retryable"] != true {
			t.Errorf("call %d: %v is not marked retryable", i+1, got.err)
		}
	}
	if n := f.storedEvents(t, org); n != 1 {
		t.Errorf("%d events stored, want only the fill", n)
	}
	for i, events := range [][]Event{first, second} {
		if res := f.record(t, org, events...); res.Accepted != len(events) {
			t.Errorf("call %d retried: %+v, want %d accepted", i+1, res, len(events))
		}
	}
	if used := f.used(t, org, "api_calls"); used != int64(1+len(first)+len(second)) {
		t.Errorf("used %d, want %d", used, 1+len(first)+len(second))
	}
}

// TestABigGroupCommitsBesideTheGroupAheadAndLeavesItRoom: a group of
// pooledEvents events is written on a pooled connection beside the group
// in flight, without waiting for it, but never takes what that group needs.
// Far from a limit it commits while the group ahead is still held; when
// both together would pass a hard limit, it waits and the call that arrived
// first is counted first.
func TestABigGroupCommitsBesideTheGroupAheadAndLeavesItRoom(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	// The free plan's 100 MiB of storage: a whole percent of it is far
	// more than the calls add, so no alert threshold lies between.
	const storage = 104857600
	for _, tc := range []struct {
		name, plan, meter string
		fill, first       int64 // used before the calls; the first call's one event
		wantBig           int   // the big call's events accepted (of quantity 1)
	}{
		{"far from the limit", "starter", "api_calls", 0, 1, pooledEvents},
		// The big call alone fits (50 short of the limit), and so does the
		// first alone, but not both: the first, which arrived first, is
		// counted, and the big call only up to the limit.
		{"at a hard limit with room for each alone", "free", "storage_bytes", storage - pooledEvents - 50, 100, pooledEvents - 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, db, nil)
			org := f.org(t, tc.plan)
			if tc.fill > 0 {
				f.record(t, org, ev(tc.meter, tc.fill, "fill"))
			}
			started := make(chan chan struct{})
			f.svc.group.hooks.started = func(_ context.Context, group []*request) {
				if len(group[0].batch) == 1 { // the first call's group is held
					release := make(chan struct{})
					started <- release
					<-release
				}
			}
			waits := make(chan int, 4)
			f.svc.group.hooks.waits = func(group []*request) { waits <- len(group[0].batch) }
			defer func() { f.svc.group.hooks = groupHooks{} }()
			firstDone, bigDone := make(chan answer, 1), make(chan answer, 1)
			go func() {
				res, err := f.svc.Record(context.Background(), org, []Event{ev(tc.meter, tc.first, "first")})
				firstDone <- answer{res, err}
			}()
			release := <-started
			go func() {
				res, err := f.svc.Record(context.Background(), org, batch(tc.meter, "big", pooledEvents))
				bigDone <- answer{res, err}
			}()
			var big answer
			if tc.wantBig == pooledEvents {
				// It commits while the first call's group is held.
				select {
				case big = <-bigDone:
				case <-time.After(10 * time.Second):
					t.Fatal("the big call waited for the group ahead of it")
				}
				close(release)
			} else {
				// Its statement undoes itself, and its transaction waits
				// for the first call's group, still held.
				select {
				case big = <-bigDone:
					t.Fatalf("the big call was answered before the call ahead of it: %+v, %v", big.res, big.err)
				case n := <-waits:
					if n != pooledEvents {
						t.Fatalf("a group of %d events waits for its turn, want the big call's", n)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the big call neither committed nor waited for its turn")
				}
				close(release)
				big = <-bigDone
			}
			first := <-firstDone
			wantFirst := tc.fill + tc.first // counted before the big call
			if tc.wantBig == pooledEvents {
				wantFirst += pooledEvents // counted after
			}
			if first.err != nil || first.res.Accepted != 1 || first.res.Usage[0].Used != wantFirst {
				t.Errorf("the first call: %+v, %v; want it counted, with usage %d", first.res, first.err, wantFirst)
			}
			if big.err != nil || big.res.Accepted != tc.wantBig {
				t.Errorf("the big call: %+v, %v; want %d accepted", big.res, big.err, tc.wantBig)
			}
			if used, want := f.used(t, org, tc.meter), tc.fill+tc.first+int64(tc.wantBig); used != want {
				t.Errorf("used %d, want %d", used, want)
			}
		})
	}
}

// TestATransactionClaimsBesideTheGroupAheadAndJudgesAfterIt: a group that
// must be written in a transaction (one of its events subtracts) claims
// its keys while the group ahead of it is still in flight, so big groups'
// inserts overlap, and judges its calls only after that group: a delete
// behind the upload that arrived first is counted, not refused for taking
// the total below zero. When the group ahead has one of its keys, it waits
// before claiming anything, and that key is a duplicate.
func TestATransactionClaimsBesideTheGroupAheadAndJudgesAfterIt(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	const meter, upload = "storage_bytes", 4096
	for _, tc := range []struct {
		name        string
		sharesKey   bool
		wantClaimed int // of the waiting call's events, when it waits
	}{
		{"keys of its own", false, overlapEvents},
		{"a key of the group ahead", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, db, nil)
			org := f.org(t, "starter")
			started := make(chan chan struct{})
			f.svc.group.hooks.started = func(_ context.Context, group []*request) {
				if len(group[0].batch) == 1 { // the upload's group is held
					release := make(chan struct{})
					started <- release
					<-release
				}
			}
			claimed := make(chan int, 4)
			f.svc.group.hooks.waits = func(group []*request) {
				n := 0
				for _, req := range group {
					for _, p := range req.batch {
						if p.claimed {
							n++
						}
					}
				}
				claimed <- n
			}
			defer func() { f.svc.group.hooks = groupHooks{} }()
			uploadDone, laterDone := make(chan answer, 1), make(chan answer, 1)
			go func() {
				res, err := f.svc.Record(context.Background(), org, []Event{ev(meter, upload, "upload")})
				uploadDone <- answer{res, err}
			}()
			release := <-started
			// overlapEvents events, so the call starts a group of its own
			// beside the held one: the delete, then calls of one unit.
			later := append([]Event{ev(meter, -upload, "delete")}, batch(meter, "unit", overlapEvents-1)...)
			if tc.sharesKey {
				later[1] = ev(meter, upload, "upload") // a retry of the upload: a duplicate
			}
			go func() {
				res, err := f.svc.Record(context.Background(), org, later)
				laterDone <- answer{res, err}
			}()
			select {
			case n := <-claimed:
				if n != tc.wantClaimed {
					t.Errorf("%d of the later call's events claimed while it waits for the upload's group, want %d", n, tc.wantClaimed)
				}
			case a := <-laterDone:
				t.Fatalf("the later call was answered before the upload ahead of it: %+v, %v", a.res, a.err)
			case <-time.After(10 * time.Second):
				t.Fatal("the later call never waited for its turn")
			}
			close(release)
			up, a := <-uploadDone, <-laterDone
			if up.err != nil || up.res.Accepted != 1 {
				t.Errorf("the upload: %+v, %v; want it counted", up.res, up.err)
			}
			wantAccepted, wantDuplicates := len(later), 0
			if tc.sharesKey {
				wantAccepted, wantDuplicates = len(later)-1, 1
			}
			if a.err != nil || a.res.Accepted != wantAccepted || a.res.Duplicates != wantDuplicates || len(a.res.Rejected) != 0 {
				t.Errorf("the later call: %+v, %v; want %d accepted (the delete too) and %d duplicates", a.res, a.err, wantAccepted, wantDuplicates)
			}
			if used, want := f.used(t, org, meter), int64(wantAccepted-1); used != want {
				t.Errorf("used %d, want %d (the upload and the delete cancel out)", used, want)
			}
		})
	}
}
