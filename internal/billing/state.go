package billing

import (
	"context"
	"fmt"
	"slices"

	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// accessStatuses are the Stripe subscription statuses that grant the
// subscribed plan. Every other status (canceled, unpaid, incomplete,
// incomplete_expired, paused) falls back to free.
var accessStatuses = []string{"active", "trialing", "past_due"}

// GrantsAccess reports whether a subscription in this Stripe status gets its
// plan.
func GrantsAccess(status string) bool { return slices.Contains(accessStatuses, status) }

// State is an organisation's billing standing.
type State struct {
	Org orgs.Organization
	// Plan is the effective plan.
	Plan plans.Plan
	// Subscription is the current Stripe subscription, nil when the
	// organisation never had one.
	Subscription *Subscription
}

// HasBillingHistory reports whether the organisation ever subscribed: it
// has a Stripe customer and a subscription in any status, canceled ones
// included. A Checkout opened and never paid creates the customer but no
// subscription, so it is not history (reference 004: the portal is refused
// to an account that never subscribed).
func (s State) HasBillingHistory() bool {
	return s.Org.StripeCustomerID != nil && *s.Org.StripeCustomerID != "" && s.Subscription != nil
}

// Price is the price the subscription pays for the effective plan, from the
// plans file: a yearly price, or one in another currency, where the plan's
// own fields give its monthly headline. None when the subscription does not
// grant the plan (free, canceled, unpaid) or its price is not in the file.
func (s State) Price() (plans.Price, bool) {
	sub := s.Subscription
	if sub == nil || sub.PlanMismatch || !GrantsAccess(sub.Status) || sub.PlanID != s.Plan.ID {
		return plans.Price{}, false
	}
	return s.Plan.PriceByID(sub.PriceID)
}

// EffectivePlanID applies the access rule: a subscription that grants access
// gives its plan; one that does not gives free; without any subscription the
// organisation keeps the plan it was assigned (free, or a contract plan).
func EffectivePlanID(assigned string, sub *Subscription) string {
	switch {
	case sub == nil:
		return assigned
	case GrantsAccess(sub.Status):
		return sub.PlanID
	default:
		return plans.FreePlanID
	}
}

// currentSubscription picks the subscription that decides the organisation's
// standing: the newest one granting access, else the newest of all.
func currentSubscription(subs []Subscription) *Subscription {
	var newest, newestAccess *Subscription
	for i := range subs {
		s := &subs[i]
		if newest == nil || s.CreatedAt.After(newest.CreatedAt) {
			newest = s
		}
		if GrantsAccess(s.Status) && (newestAccess == nil || s.CreatedAt.After(newestAccess.CreatedAt)) {
			newestAccess = s
		}
	}
	if newestAccess != nil {
		return newestAccess
	}
	return newest
}

// loadState reads an organisation's standing with db (a transaction or not).
func loadState(ctx context.Context, db *store.DB, catalog *plans.Catalog, orgID string) (State, error) {
	var st State
	org, err := orgs.Load(ctx, db.DB, orgID)
	if err != nil {
		return st, err
	}
	st.Org = org
	var subs []Subscription
	if err := db.WithContext(ctx).Where("org_id = ?", orgID).Find(&subs).Error; err != nil {
		return st, fmt.Errorf("load subscriptions of org %s: %w", orgID, err)
	}
	st.Subscription = currentSubscription(subs)
	plan, ok := catalog.ByID(EffectivePlanID(st.Org.PlanID, st.Subscription))
	if !ok {
		// A plan removed from the config: bill nothing, grant free.
		plan = catalog.Free()
	}
	st.Plan = plan
	return st, nil
}
