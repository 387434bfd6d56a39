package ratelimit

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/auth"
)

// StripeCharge is the gqlgen extension that charges an operation's fields
// that call Stripe (createCheckoutSession, upcomingInvoice, …) to its
// organisation's Stripe budget, all its credentials together: every
// organisation shares Tollgate's one Stripe account and its rate limit (100
// calls a second in live mode), which the API's own budgets, thousands of
// root fields a second, do not protect. Each such root field costs one,
// aliases included, whether or not it goes on to reach Stripe; the budget
// is perSecond with a burst of the same size. Over it the operation is
// refused before anything runs, with extensions.code RATE_LIMITED and
// retryAfterSeconds (HTTP 429 with Retry-After when the API's own budget
// is on, as WorkCharge's refusals are); an operation of more such fields
// than the budget holds is refused with TOO_MUCH_WORK. Redis down lets
// operations through, as the rest of the limiter does.
//
// Register it after the complexity limit, so an operation refused for its
// size spends none of it, and after WorkCharge, so one refused by the
// API's budget spends none of it either. One it refuses keeps what
// WorkCharge charged: it was received and parsed.
type StripeCharge struct {
	l         *Limiter
	perSecond int
	fields    map[string]bool
}

// NewStripeCharge charges the root fields named in fields to the
// organisation's budget of perSecond (0: no limit) in l.
func NewStripeCharge(l *Limiter, perSecond int, fields []string) *StripeCharge {
	set := make(map[string]bool, len(fields))
	for _, f := range fields {
		set[f] = true
	}
	return &StripeCharge{l: l, perSecond: perSecond, fields: set}
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = (*StripeCharge)(nil)

// ExtensionName names the extension.
func (*StripeCharge) ExtensionName() string { return "StripeCharge" }

// Validate accepts any schema.
func (*StripeCharge) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext charges the operation's Stripe-calling fields
// before it runs.
func (s *StripeCharge) MutateOperationContext(ctx context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if s.perSecond <= 0 || op.Operation == nil {
		return nil
	}
	p, ok := auth.FromContext(ctx)
	if !ok || p.OrgID == "" {
		return nil // these fields need credentials; they refuse on their own
	}
	n := s.count(op.Operation.SelectionSet)
	if n == 0 {
		return nil
	}
	if n > s.perSecond {
		err := gqlerror.Errorf("the operation has %d fields that call Stripe; an organisation may run at most %d a second, so send them in smaller requests", n, s.perSecond)
		err.Extensions = map[string]any{"code": "TOO_MUCH_WORK", "stripeCalls": n, "limit": s.perSecond}
		return err
	}
	d := s.l.AllowN(ctx, "stripe:org:"+p.OrgID, s.perSecond, n)
	if d.Allowed {
		return nil
	}
	if c, ok := ctx.Value(chargeKey{}).(*charge); ok {
		c.refused.Store(&d)
	}
	err := gqlerror.Errorf("rate limit exceeded: the operation's %d fields that call Stripe are more than this organisation has left this second", n)
	err.Extensions = map[string]any{"code": string(apperr.RateLimited), "retryAfterSeconds": retrySeconds(d.RetryAfter)}
	return err
}

// count is how many of the operation's distinct root response keys are
// Stripe fields. An operation of plain fields none of which is one (a gate,
// recordUsage) is answered without the allocations of RootFields' walk.
func (s *StripeCharge) count(set ast.SelectionSet) int {
	walk := false
	for _, sel := range set {
		f, ok := sel.(*ast.Field)
		if !ok || s.fields[f.Name] {
			walk = true
			break
		}
	}
	if !walk {
		return 0
	}
	n := 0
	rootFields(set, func(name string) {
		if s.fields[name] {
			n++
		}
	})
	return n
}
