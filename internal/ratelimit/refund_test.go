package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestARequestItsOrganisationRefusesSpendsNothingOfItsCredential: a key
// whose organisation is over its budget is refused without losing its own
// budget, counted call by call and leased. The key is then presented under
// another organisation (a principal of the test's making) with room to
// spare, where only its
// own budget can refuse it: it has what its first organisation let through
// spent, not what that organisation refused.
func TestARequestItsOrganisationRefusesSpendsNothingOfItsCredential(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		for _, c := range []struct{ perKey, perOrg int }{{20, 5}, {1000, 200}} {
			org, other, key := store.NewID(), store.NewID(), store.NewID()
			l := New(rdb, quiet())
			h := handler(NewAPI(l, APILimits{PerCredential: c.perKey, PerOrganization: c.perOrg, PerAddress: 1000}))
			// The other organisation has room for all the key's budget.
			elsewhere := handler(NewAPI(l, APILimits{PerCredential: c.perKey, PerOrganization: 10 * c.perKey, PerAddress: 1000}))
			passed := 0
			for range c.perKey + c.perOrg {
				if as(h, org, key).Code == http.StatusOK {
					passed++
				}
			}
			if passed >= c.perKey {
				t.Fatalf("budgets %+v: the organisation let %d through, want it to refuse before the key's limit", c, passed)
			}
			again := 0
			for range c.perKey {
				if as(elsewhere, other, key).Code == http.StatusOK {
					again++
				}
			}
			// Leased tokens of an expired lease are lost (at most two
			// leases' worth, rate/leaseShare each).
			slack := 2 * c.perKey / leaseShare
			if want := c.perKey - passed - slack; again < want {
				t.Errorf("budgets %+v: after %d passed and %d were refused by the organisation, the key passed %d of %d elsewhere, want at least %d",
					c, passed, c.perOrg+c.perKey-passed, again, c.perKey, want)
			}
		}
	})
}

// operation runs MutateOperationContext for an operation of n root fields
// under the request's charge, as gqlgen would, and answers 429 when it is
// refused.
func operation(n int) http.Handler {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		b.WriteString(" f")
		b.WriteString(strings.Repeat("x", i+1))
		b.WriteString(": f")
	}
	b.WriteString(" }")
	doc, err := parser.ParseQuery(&ast.Source{Input: b.String()})
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := &graphql.OperationContext{Operation: doc.Operations[0]}
		if e := (WorkCharge{}).MutateOperationContext(r.Context(), op); e != nil {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

func withWork(a *API, n int, org, keyID string) int {
	r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	r = r.WithContext(auth.WithPrincipal(context.Background(), &auth.Principal{OrgID: org, APIKeyID: keyID}))
	w := httptest.NewRecorder()
	a.Middleware(operation(n)).ServeHTTP(w, r)
	return w.Code
}

// TestAnOperationItsOrganisationRefusesGivesItsCredentialTheWorkBack: an
// operation whose root fields its organisation has no room for gives back
// the units its credential was charged for them (keeping the first, which
// paid for the request).
func TestAnOperationItsOrganisationRefusesGivesItsCredentialTheWorkBack(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		const perKey, perOrg, work = 100, 30, 25
		org, other, key := store.NewID(), store.NewID(), store.NewID()
		l := New(rdb, quiet())
		a := NewAPI(l, APILimits{PerCredential: perKey, PerOrganization: perOrg, PerAddress: 1000})
		elsewhere := NewAPI(l, APILimits{PerCredential: perKey, PerOrganization: 10 * perKey, PerAddress: 1000})
		if code := withWork(a, work, org, key); code != http.StatusOK {
			t.Fatalf("%d root fields of an organisation's %d: %d", work, perOrg, code)
		}
		if code := withWork(a, work, org, key); code != http.StatusTooManyRequests {
			t.Fatalf("another %d root fields of an organisation's %d: %d, want 429", work, perOrg, code)
		}
		// The key has spent work+1 of its perKey: an operation of all but
		// a few of the rest passes elsewhere. Without the refund it would
		// have spent 2*work and this one could not pass.
		rest := perKey - work - 1 - 4
		if code := withWork(elsewhere, rest, other, key); code != http.StatusOK {
			t.Errorf("the key's next %d root fields under another organisation: %d, want 200 (its %d refused fields given back)", rest, code, work-1)
		}
	})
}

// TestARefundThatWouldFillTheBudgetLeavesItShortOfOneToken: tokens given
// back to a budget nothing else has charged meanwhile leave it all but
// full: redis_rate stores nothing for a charge that would overfill it, so
// the refund gives back all but the last, partly refilled, token (see
// Refunds), never more than was taken.
func TestARefundThatWouldFillTheBudgetLeavesItShortOfOneToken(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		const rate, took = 20, 5
		l, key := New(rdb, quiet()), store.NewID()
		ctx := context.Background()
		d := l.AllowN(ctx, key, rate, took)
		if !d.Allowed {
			t.Fatalf("%d of a fresh %d: %+v", took, rate, d)
		}
		l.ReturnN(ctx, key, rate, took, d)
		if d := l.AllowN(ctx, key, rate, rate-1); !d.Allowed {
			t.Errorf("after %d were taken and given back, %d of %d were refused: %+v", took, rate-1, rate, d)
		}
		if d := l.AllowN(ctx, key, rate, 2); d.Allowed {
			t.Errorf("2 more passed on a budget of %d after %d: the refund gave back more than it took", rate, rate-1)
		}
	})
}
