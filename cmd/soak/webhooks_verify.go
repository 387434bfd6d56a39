package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/plans"
)

const subscriptionQuery = `{ subscription { plan { id } status cancelAtPeriodEnd currentPeriodEnd } }`

// graphQLSample is how many organisations are also checked through the
// `subscription` query, beside the SQL check of all of them.
const graphQLSample = 100

type storedSub struct {
	orgID, status, planID, priceID string
	cancelAtPeriodEnd              bool
	periodEnd, canceledAt, lastAt  *time.Time
	orgPlan                        string
}

// verifySubscriptions checks every stored subscription, and its
// organisation's plan, against the lifecycle's last version.
func verifySubscriptions(ctx context.Context, env *environment, hc *http.Client, rep *report, phase string, lives []lifecycle, events int) error {
	prefix := "sub_soak" + env.runID + "_%"
	rows, err := env.db.Query(ctx, `
SELECT s.stripe_subscription_id, s.org_id, s.status, s.plan_id, s.price_id, s.cancel_at_period_end,
       s.current_period_end, s.canceled_at, s.last_event_at, o.plan_id
FROM subscriptions s JOIN organizations o ON o.id = s.org_id
WHERE s.stripe_subscription_id LIKE $1`, prefix)
	if err != nil {
		return fmt.Errorf("read subscriptions: %w", err)
	}
	stored := map[string][]storedSub{}
	for rows.Next() {
		var id string
		var s storedSub
		if err := rows.Scan(&id, &s.orgID, &s.status, &s.planID, &s.priceID, &s.cancelAtPeriodEnd,
			&s.periodEnd, &s.canceledAt, &s.lastAt, &s.orgPlan); err != nil {
			rows.Close()
			return err
		}
		stored[id] = append(stored[id], s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read subscriptions: %w", err)
	}

	byField := map[string]int{}
	var mismatched, orgMismatched int
	var examples []string
	for _, l := range lives {
		diffs := compareSub(l, stored[l.subID])
		subDiffs := 0
		for _, d := range diffs {
			byField[d.field]++
			if d.field == orgPlanField {
				orgMismatched++
			} else {
				subDiffs++
			}
		}
		if subDiffs > 0 {
			mismatched++
		}
		if len(diffs) > 0 && len(examples) < 5 {
			examples = append(examples, describeDiff(l, diffs))
		}
	}

	var stored200 int64
	if err := env.db.QueryRow(ctx, `SELECT count(*) FROM webhook_events WHERE id LIKE $1`, "evt_soak"+env.runID+"_%").Scan(&stored200); err != nil {
		return fmt.Errorf("count webhook_events: %w", err)
	}
	rep.check(phase, "webhook_events rows", stored200, events)
	rep.check(phase, "subscriptions stored", len(stored), len(lives))
	rep.check(phase, "mismatches (row ≠ last version by created)", mismatched, 0)
	rep.check(phase, "organisation plan ≠ last version's effective plan", orgMismatched, 0)
	if len(byField) > 0 {
		rep.info(phase, "mismatched fields", describeCounts(byField))
		for _, e := range examples {
			rep.note("phase 2: %s", e)
		}
	}

	n := min(graphQLSample, len(lives))
	bad := 0
	for i := range n {
		l := lives[i*len(lives)/n]
		t := env.proc(i)
		var got struct {
			Subscription struct {
				Plan              struct{ ID string }
				Status            *string
				CancelAtPeriodEnd *bool
				CurrentPeriodEnd  *time.Time
			}
		}
		if err := query(ctx, hc, t.url, bearer(env.token(l.orgExternal)), subscriptionQuery, nil, &got); err != nil {
			return fmt.Errorf("subscription query on %s: %w", t.name, err)
		}
		last := l.last()
		pe := last.periodEnd()
		s := got.Subscription
		ok := s.Plan.ID == effectivePlan(last) && s.Status != nil && *s.Status == strings.ToUpper(last.status) &&
			s.CancelAtPeriodEnd != nil && *s.CancelAtPeriodEnd == last.cancelAtPeriodEnd &&
			s.CurrentPeriodEnd != nil && s.CurrentPeriodEnd.Equal(pe)
		if !ok {
			bad++
			if bad <= 3 {
				rep.note("phase 2: subscription query for %s answered plan %s status %s cancelAtPeriodEnd %s currentPeriodEnd %s; want %s %s %v %s",
					l.orgExternal, s.Plan.ID, deref(s.Status), deref(s.CancelAtPeriodEnd), timeText(s.CurrentPeriodEnd),
					effectivePlan(last), strings.ToUpper(last.status), last.cancelAtPeriodEnd, timeText(&pe))
			}
		}
	}
	rep.check(phase, fmt.Sprintf("subscription query ≠ last version (%d sampled, all processes)", n), bad, 0)
	return nil
}

type fieldDiff struct{ field, got, want string }

// orgPlanField is the diff about the organisation rather than its
// subscription row.
const orgPlanField = "organisation plan"

// effectivePlan is the plan an organisation whose only subscription ended
// at v must be on.
func effectivePlan(v version) string {
	if billing.GrantsAccess(v.status) {
		return v.plan.ID
	}
	return plans.FreePlanID
}

func compareSub(l lifecycle, rows []storedSub) []fieldDiff {
	switch len(rows) {
	case 0:
		return []fieldDiff{{"row", "missing", "1 row"}}
	case 1:
	default:
		return []fieldDiff{{"row", fmt.Sprintf("%d rows", len(rows)), "1 row"}}
	}
	s, v := rows[0], l.last()
	var d []fieldDiff
	eq := func(field, got, want string) {
		if got != want {
			d = append(d, fieldDiff{field, got, want})
		}
	}
	eq("org", s.orgID, l.orgID)
	eq("status", s.status, v.status)
	eq("plan", s.planID, v.plan.ID)
	eq("price", s.priceID, v.plan.StripePriceID)
	eq("cancel_at_period_end", fmt.Sprint(s.cancelAtPeriodEnd), fmt.Sprint(v.cancelAtPeriodEnd))
	pe := v.periodEnd()
	eq("current_period_end", timeText(s.periodEnd), timeText(&pe))
	eq("canceled_at", timeText(s.canceledAt), timeText(v.canceledAt))
	eq("last_event_at", timeText(s.lastAt), timeText(&v.created))
	eq(orgPlanField, s.orgPlan, effectivePlan(v))
	return d
}

func describeDiff(l lifecycle, diffs []fieldDiff) string {
	parts := make([]string, len(diffs))
	for i, d := range diffs {
		parts[i] = fmt.Sprintf("%s %s, want %s", d.field, d.got, d.want)
	}
	sort.Strings(parts)
	var hist []string
	for _, v := range l.versions {
		hist = append(hist, fmt.Sprintf("%s@%d %s/%s cape=%v", strings.TrimPrefix(v.eventType, "customer.subscription."),
			v.created.Unix(), v.status, v.plan.ID, v.cancelAtPeriodEnd))
	}
	return fmt.Sprintf("%s: %s (history: %s)", l.subID, strings.Join(parts, "; "), strings.Join(hist, " → "))
}

func timeText(t *time.Time) string {
	if t == nil {
		return "null"
	}
	return t.UTC().Format(time.RFC3339)
}

// deref prints a nullable GraphQL field.
func deref[T any](p *T) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}
