package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/tollgate-billing/tollgate/internal/plans"
)

// Usage alerts and their outbound webhooks, checked through phase 1's
// faults: organisations on paid plans whose api_calls limits the load
// crosses, each with a webhook endpoint at the harness's receiver.

const (
	setAlerts = `mutation Alerts($meter: String!, $percents: [Int!]!) { setUsageAlerts(meter: $meter, percents: $percents) {
  usageAlerts { percents } userErrors { field code message } } }`
	createEndpoint = `mutation Endpoint($in: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $in) {
  webhookEndpoint { id } secret userErrors { field code message } } }`
	gatePlanQuery    = `query Gate($meter: String!) { usageGate(meter: $meter) { plan limit } }`
	usageAlertsQuery = `query Alerts($period: String) { usageAlerts(period: $period) { meter period percent used limit limitReached } }`

	// mainShare of phase 1's batches go to the main organisation, the rest
	// evenly to the alert organisations.
	mainShare = 0.4
	// deliveryDeadline is how long after the load the last delivery may
	// arrive: a first attempt that failed is retried 24 to 36 s later
	// (River's backoff, 30 s ± 20%), and River picks it up within seconds;
	// the faults end well before the load does, and a second failure (60 s
	// backoff) still fits.
	deliveryDeadline = 100 * time.Second
)

// The soak's paid plans: soft api_calls limits (usage past them is
// accepted, so the load is never refused) that the load crosses, starter's
// early in phase 1 and growth's late or not at all, with their own
// thresholds; and on starter a small hard limit on hardMeter, which phase
// 1's consumers fill exactly (see hardlimit.go). A soft limit's thresholds,
// 100% included, fire usage.threshold_reached; 100% of a hard limit fires
// usage.limit_reached.
var (
	soakLimits = map[string]int64{"starter": 20_000, "growth": 40_000}
	soakAlerts = map[string][]int{"starter": {10, 25, 50, 75, 90, 100}, "growth": {20, 40, 60, 80, 100}}
)

const (
	hardMeter    = "llm_tokens"
	hardPlan     = "starter"
	hardLimit    = 800
	hardMaxUnits = 5 // a consumer's quantity is 1 to hardMaxUnits
)

var hardAlerts = []int{50, 100}

// alertSpecs are the alert organisations: on each plan with its thresholds,
// and one that set its own on api_calls through setUsageAlerts.
var alertSpecs = []struct {
	name, plan string
	own        []int
}{
	{"alerts-1", "starter", nil},
	{"alerts-2", "starter", everyFive()},
	{"alerts-3", "growth", nil},
}

func everyFive() []int {
	var p []int
	for i := 5; i <= 100; i += 5 {
		p = append(p, i)
	}
	return p
}

// alertOrg is what an alert organisation expects, per meter.
type alertOrg struct {
	plan   string
	meters []*alertMeter
}

// alertMeter is one limited meter of an alert organisation.
type alertMeter struct {
	meter    string
	limit    int64
	hard     bool
	percents []int // the thresholds in effect, ascending
	own      bool  // set through setUsageAlerts
	total    int64 // stored after phase 1
}

func (a *alertOrg) meter(name string) *alertMeter {
	for _, m := range a.meters {
		if m.meter == name {
			return m
		}
	}
	return nil
}

// setUpAlertOrgs creates the alert organisations, moves each to its plan
// with a signed Stripe subscription event (as Checkout would), waits until
// every process sees the plan, sets its own thresholds where it has them,
// and registers its webhook endpoint at the receiver.
func setUpAlertOrgs(ctx context.Context, env *environment, hc *http.Client, log *slog.Logger) ([]*usageOrg, error) {
	log.Info("soak: phase 1: setting up alert organisations", "count", len(alertSpecs))
	var orgs []*usageOrg
	for i, spec := range alertSpecs {
		plan, ok := env.catalog.ByID(spec.plan)
		if !ok {
			return nil, fmt.Errorf("soak plans have no %s plan", spec.plan)
		}
		o := &usageOrg{
			name: spec.name, external: "soak-" + spec.name + "-" + env.runID,
			share:  (1 - mainShare) / float64(len(alertSpecs)),
			alerts: &alertOrg{plan: plan.ID},
		}
		for _, name := range []string{usageMeter, hardMeter} {
			if l, ok := plan.LimitFor(name); ok && !l.Unlimited && (name == usageMeter || l.Hard) {
				o.alerts.meters = append(o.alerts.meters, &alertMeter{meter: name, limit: l.Limit, hard: l.Hard, percents: l.Alerts})
			}
		}
		if o.alerts.meter(hardMeter) != nil {
			o.hard = &hardTally{allowed: map[string]int64{}, other: map[string]int{}}
		}
		if err := o.create(ctx, env, hc, i); err != nil {
			return nil, err
		}
		if err := subscribe(ctx, env, hc, o, plan, i); err != nil {
			return nil, err
		}
		if spec.own != nil {
			var out struct {
				SetUsageAlerts struct {
					UsageAlerts *struct{ Percents []int }
					UserErrors  []struct{ Field, Code, Message string }
				}
			}
			vars := map[string]any{"meter": usageMeter, "percents": spec.own}
			if err := query(ctx, hc, env.proc(i+2).url, bearer(o.tok), setAlerts, vars, &out); err != nil || out.SetUsageAlerts.UsageAlerts == nil {
				return nil, fmt.Errorf("setUsageAlerts for %s: %v %+v", o.name, err, out.SetUsageAlerts.UserErrors)
			}
			m := o.alerts.meter(usageMeter)
			m.percents, m.own = out.SetUsageAlerts.UsageAlerts.Percents, true
		}
		var ep struct {
			CreateWebhookEndpoint struct {
				WebhookEndpoint *struct{ ID string }
				Secret          *string
				UserErrors      []struct{ Field, Code, Message string }
			}
		}
		in := map[string]any{"url": env.hooks.url(o.name), "events": []string{"usage.threshold_reached", "usage.limit_reached"}}
		if err := query(ctx, hc, env.proc(i+1).url, bearer(o.tok), createEndpoint, map[string]any{"in": in}, &ep); err != nil || ep.CreateWebhookEndpoint.Secret == nil {
			return nil, fmt.Errorf("createWebhookEndpoint for %s: %v %+v", o.name, err, ep.CreateWebhookEndpoint.UserErrors)
		}
		if err := env.hooks.register(o.name, *ep.CreateWebhookEndpoint.Secret); err != nil {
			return nil, err
		}
		orgs = append(orgs, o)
	}
	return orgs, nil
}

// subscribe puts the organisation on plan through a signed
// customer.subscription.created, then waits until every process's gate
// answers with the plan (each caches plans for a moment).
func subscribe(ctx context.Context, env *environment, hc *http.Client, o *usageOrg, plan plans.Plan, i int) error {
	now := time.Now().UTC().Truncate(time.Second)
	// Not phase 2's "sub_soak<run>_" prefix, which it counts.
	id := fmt.Sprintf("soakalerts%s_%s", env.runID, o.name)
	l := lifecycle{orgExternal: o.external, orgID: o.id, subID: "sub_" + id, customer: "cus_" + id, subCreated: now,
		versions: []version{{eventID: "evt_" + id, eventType: "customer.subscription.created", created: now,
			status: "active", plan: plan, periodStart: now}}}
	if err := recordCheckout(ctx, env, o.id, l.customer); err != nil {
		return err
	}
	status, outcome, err := postStripeEvent(ctx, env, hc, env.proc(i), l.event(0))
	if err != nil || status != http.StatusOK || outcome != "applied" {
		return fmt.Errorf("subscribe %s to %s: HTTP %d %q %v", o.name, plan.ID, status, outcome, err)
	}
	for _, t := range env.processes() {
		err := waitFor(o.name+" on "+plan.ID+" at "+t.name, 30*time.Second, nil, func() error {
			var g struct{ UsageGate struct{ Plan string } }
			if err := query(ctx, hc, t.url, bearer(o.tok), gatePlanQuery, map[string]any{"meter": usageMeter}, &g); err != nil {
				return err
			}
			if g.UsageGate.Plan != plan.ID {
				return fmt.Errorf("still on %s", g.UsageGate.Plan)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// thresholdOf is the smallest total at or past percent of limit, as
// Tollgate computes it.
func thresholdOf(limit int64, percent int) int64 {
	p := int64(percent)
	return limit/100*p + (limit%100*p+99)/100
}

// expected are the thresholds the stored total crossed.
func (m *alertMeter) expected() []int {
	var out []int
	for _, p := range m.percents {
		if thresholdOf(m.limit, p) <= m.total {
			out = append(out, p)
		}
	}
	return out
}

// eventType is the outbound event an alert at percent sends.
func (m *alertMeter) eventType(percent int) string {
	if m.hard && percent == 100 {
		return "usage.limit_reached"
	}
	return "usage.threshold_reached"
}
