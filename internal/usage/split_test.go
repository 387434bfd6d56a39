package usage

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// orgCall is one Record call of a group made of several organisations'.
type orgCall struct {
	org    string
	events []Event
}

// recordGroupOf makes calls as one group, in call order, behind a held call
// of lead's that counts nothing (as recordHeld does for one organisation),
// and returns their answers and the group sizes seen.
func recordGroupOf(t *testing.T, f *fixture, lead string, calls []orgCall) ([]answer, []int) {
	t.Helper()
	calls = append([]orgCall{{lead, []Event{ev("api_calls", 0, "held")}}}, calls...)
	h := holdFirstGroups(f)
	answers := make([]answer, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { answers[i].res, answers[i].err = f.svc.Record(context.Background(), c.org, c.events) })
		<-h.queued
		if i < h.slots {
			<-h.held
		}
	}
	close(h.release)
	wg.Wait()
	f.svc.group.hooks = groupHooks{}
	return answers[1:], h.sizes()
}

// groupWrites reads how many calls group commits have written by one
// statement and by a transaction.
func groupWrites() (statement, transaction float64) {
	return testutil.ToFloat64(writtenByStatement), testutil.ToFloat64(writtenByTransaction)
}

// recordGroupWritten is recordGroupOf, checking that the calls made (with
// the held one) formed groups of 1 and len(calls), and that the statement
// and the transaction wrote byStatement and byTransaction of them.
func recordGroupWritten(t *testing.T, f *fixture, lead string, calls []orgCall, byStatement, byTransaction float64) []answer {
	t.Helper()
	statement, transaction := groupWrites()
	answers, sizes := recordGroupOf(t, f, lead, calls)
	if want := fmt.Sprint([]int{1, len(calls)}); fmt.Sprint(sizes) != want {
		t.Fatalf("groups of %v calls, want %s", sizes, want)
	}
	afterStatement, afterTransaction := groupWrites()
	if got := afterStatement - statement; got != byStatement {
		t.Errorf("%v calls written by one statement, want %v", got, byStatement)
	}
	if got := afterTransaction - transaction; got != byTransaction {
		t.Errorf("%v calls written by a transaction, want %v", got, byTransaction)
	}
	return answers
}

// atItsHardLimit fills a free organisation's api_calls to 995 of its hard
// 1,000 and has a call of 10 refused, after which its total is known to be
// near the limit.
func atItsHardLimit(t *testing.T, f *fixture) string {
	t.Helper()
	org := f.org(t, "free")
	f.record(t, org, ev("api_calls", 995, "fill"))
	if _, err := f.svc.Record(context.Background(), org, []Event{ev("api_calls", 10, "over")}); apperr.CodeOf(err) != apperr.UsageLimitExceeded {
		t.Fatalf("a call past the hard limit: %v, want USAGE_LIMIT_EXCEEDED", err)
	}
	return org
}

// An organisation whose total is near its hard limit has its calls judged
// one by one in a transaction; the other organisations grouped with it are
// still written by one statement, beside that transaction, and every call
// is answered as if alone.
func TestAnOrganisationAtItsHardLimitSendsOnlyItsOwnCallsTheSlowWay(t *testing.T) {
	f := newFixture(t, testenv.OpenDB(t, store.Postgres), nil)
	paid, limited := f.org(t, "starter"), atItsHardLimit(t, f)

	// The held call and the paid organisation's two by one statement each
	// time; the limited organisation's two by the transaction.
	answers := recordGroupWritten(t, f, paid, []orgCall{
		{paid, []Event{ev("api_calls", 1, "p1")}},
		{limited, []Event{ev("api_calls", 1, "l1")}},
		{paid, []Event{ev("api_calls", 2, "p2")}},
		{limited, []Event{ev("api_calls", 10, "l2")}},
	}, 3, 2)

	for i, want := range []int{1, 1, 1, 0} {
		if answers[i].res.Accepted != want {
			t.Errorf("call %d: %+v, %v; want %d accepted", i, answers[i].res, answers[i].err, want)
		}
	}
	if err := answers[3].err; apperr.CodeOf(err) != apperr.UsageLimitExceeded {
		t.Errorf("the limited organisation's call of 10 at 996: %v, want USAGE_LIMIT_EXCEEDED", err)
	}
	if got := answers[2].res.Usage[0].Used; got != 3 {
		t.Errorf("the paid organisation's second call reports %d used, want 3", got)
	}
	if used := f.used(t, paid, "api_calls"); used != 3 {
		t.Errorf("the paid organisation used %d, want 3", used)
	}
	if used := f.used(t, limited, "api_calls"); used != 996 {
		t.Errorf("the limited organisation used %d, want 996", used)
	}
}

// When the transaction of the slow part of a group fails, its calls are
// told to retry and nothing of them is stored, while the calls the
// statement wrote beside it stand and are answered.
func TestWhenOnePartOfAGroupFailsOnlyItsCallsAreToldToRetry(t *testing.T) {
	db := testenv.OpenDB(t, store.Postgres)
	f := newFixture(t, db, nil)
	paid, limited := f.org(t, "starter"), atItsHardLimit(t, f)
	// Any write of the limited organisation's daily rollup now fails.
	refuse := fmt.Sprintf("ALTER TABLE usage_daily_rollups ADD CONSTRAINT refuse_writes CHECK (org_id <> '%s') NOT VALID", limited)
	if err := db.Exec(refuse).Error; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("ALTER TABLE usage_daily_rollups DROP CONSTRAINT IF EXISTS refuse_writes") })

	answers, sizes := recordGroupOf(t, f, paid, []orgCall{
		{paid, []Event{ev("api_calls", 1, "p1")}},
		{limited, []Event{ev("api_calls", 1, "l1")}},
		{paid, []Event{ev("api_calls", 2, "p2")}},
	})
	if fmt.Sprint(sizes) != "[1 3]" {
		t.Fatalf("groups of %v calls, want [1 3]", sizes)
	}
	for _, i := range []int{0, 2} {
		if a := answers[i]; a.err != nil || a.res.Accepted != 1 {
			t.Errorf("the paid organisation's call %d: %+v, %v; want it counted", i, a.res, a.err)
		}
	}
	if e, ok := apperr.As(answers[1].err); !ok || e.Code != apperr.Unavailable || e.Extensions["retryable"] != true {
		t.Errorf("the limited organisation's call: %+v, %v; want UNAVAILABLE and retryable", answers[1].res, answers[1].err)
	}
	if used := f.used(t, paid, "api_calls"); used != 3 {
		t.Errorf("the paid organisation used %d, want 3", used)
	}
	if used, stored := f.used(t, limited, "api_calls"), f.storedEvents(t, limited); used != 995 || stored != 1 {
		t.Errorf("the limited organisation: %d used, %d events stored; want 995 and only the fill", used, stored)
	}

	if err := db.Exec("ALTER TABLE usage_daily_rollups DROP CONSTRAINT refuse_writes").Error; err != nil {
		t.Fatal(err)
	}
	if res := f.record(t, limited, ev("api_calls", 1, "l1")); res.Accepted != 1 {
		t.Fatalf("the retry: %+v, want it counted: the failed part claimed no key", res)
	}
	if used := f.used(t, limited, "api_calls"); used != 996 {
		t.Errorf("the limited organisation used %d after the retry, want 996", used)
	}
}

// When a group's statement undoes itself at one organisation's hard limit,
// only the totals it would have taken past their ceilings are remembered as
// near: another organisation on a plan with hard limits that shared the
// group, far from its own, has its next calls written by the statement
// again, not by the transaction for the next minute.
func TestOnlyTheTotalAtItsLimitLeavesTheOneStatement(t *testing.T) {
	f := newFixture(t, testenv.OpenDB(t, store.Postgres), nil)
	limited, roomy := f.org(t, "free"), f.org(t, "free")
	f.record(t, limited, ev("api_calls", 995, "fill"))

	// The statement finds 995 + 10 past 1,000 and undoes itself; the
	// transaction then counts the roomy call and refuses the other.
	answers, sizes := recordGroupOf(t, f, roomy, []orgCall{
		{roomy, []Event{ev("api_calls", 1, "r1")}},
		{limited, []Event{ev("api_calls", 10, "l1")}},
	})
	if fmt.Sprint(sizes) != "[1 2]" {
		t.Fatalf("groups of %v calls, want [1 2]", sizes)
	}
	if a := answers[0]; a.err != nil || a.res.Accepted != 1 {
		t.Fatalf("the roomy organisation's call: %+v, %v; want it counted", a.res, a.err)
	}
	if err := answers[1].err; apperr.CodeOf(err) != apperr.UsageLimitExceeded {
		t.Fatalf("10 more at 995 of a hard 1,000: %v, want USAGE_LIMIT_EXCEEDED", err)
	}

	// The held call and the roomy organisation's by one statement; the
	// limited organisation's by the transaction.
	answers = recordGroupWritten(t, f, roomy, []orgCall{
		{roomy, []Event{ev("api_calls", 1, "r2")}},
		{limited, []Event{ev("api_calls", 1, "l2")}},
	}, 2, 1)
	if a := answers[0]; a.err != nil || a.res.Accepted != 1 || a.res.Usage[0].Used != 2 {
		t.Errorf("the roomy organisation's second call: %+v, %v; want it counted, 2 used", a.res, a.err)
	}
	if a := answers[1]; a.err != nil || a.res.Accepted != 1 || a.res.Usage[0].Used != 996 {
		t.Errorf("the limited organisation's call of 1 at 995: %+v, %v; want it counted, 996 used", a.res, a.err)
	}
}
