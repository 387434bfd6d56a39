package main

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

const (
	gateQuery  = `query Gate($meter: String!) { usageGate(meter: $meter) { allowed used limit remaining plan billingStatus } }`
	floorQuery = `query Floor { __typename }`
	gateMeter  = "api_calls"
	// inProcessGates is how many Service.Gate calls the in-process
	// reference times.
	inProcessGates = 20000
)

// gateResult is section 1 of the report.
type gateResult struct {
	FixedFloor, Fixed, SatFloor, Sat run
	// FixedKey is the fixed-rate gate authenticated with an API key, as
	// host backends call it, instead of a JWT.
	FixedKey  run
	InProcess run
	// Enterprise is the gate at saturation for an organisation on the
	// enterprise plan, of which Throttled were refused by its rate.
	Enterprise run
	Throttled  int
}

// gatePhase times usageGate over HTTP at a fixed rate and at saturation,
// each beside `{ __typename }` on the same server and token: everything the
// gate costs above that floor is its own work.
func gatePhase(ctx context.Context, b *bench, o options) (gateResult, error) {
	var r gateResult
	orgID, token, err := b.org(ctx, "gate", benchPlanID)
	if err != nil {
		return r, err
	}
	// Some usage, so the gate reads a real counter.
	events := make([]usage.Event, 10)
	for i := range events {
		events[i] = usage.Event{Meter: gateMeter, Quantity: 1, IdempotencyKey: fmt.Sprintf("gate-%d", i)}
	}
	if _, err := b.app.Usage.Record(ctx, orgID, events); err != nil {
		return r, err
	}
	c := newGraphQL(b.baseURL, token)
	defer c.close()

	var check struct {
		UsageGate struct {
			Allowed bool
			Used    int64
			Plan    string
		}
	}
	if err := c.do(ctx, gateQuery, map[string]any{"meter": gateMeter}, &check); err != nil {
		return r, err
	}
	if g := check.UsageGate; !g.Allowed || g.Used != int64(len(events)) || g.Plan != benchPlanID {
		return r, fmt.Errorf("usageGate answered %+v, want allowed, used %d, plan %s", g, len(events), benchPlanID)
	}

	_, secret, err := b.app.Keys.Create(ctx, orgID, auth.CreateKeyInput{Name: "bench backend", Scopes: []auth.Scope{auth.UsageWrite, auth.BillingRead}, CreatorScopes: auth.AllScopes})
	if err != nil {
		return r, err
	}
	// The timed requests go through rawClient, which keeps the load
	// generator's own work out of the figures as far as it can.
	gateBody := body(gateQuery, map[string]any{"meter": gateMeter})
	var gate, floor, keyGate op
	for _, x := range []struct {
		op         *op
		credential string
		body       []byte
	}{{&gate, token, gateBody}, {&floor, token, body(floorQuery, nil)}, {&keyGate, secret, gateBody}} {
		rc, err := newRawClient(b.baseURL, x.credential, x.body)
		if err != nil {
			return r, err
		}
		defer rc.close()
		*x.op = rc.post
	}

	// Warm connections, caches and the Redis counter before timing.
	saturate(ctx, o.workers, o.warmup, floor)
	saturate(ctx, o.workers, o.warmup, gate)
	saturate(ctx, o.workers, o.warmup, keyGate)

	if r.Enterprise, r.Throttled, err = enterpriseProbe(ctx, b, o); err != nil {
		return r, err
	}
	var probe *stallProbe
	if o.stallProbe {
		if probe, err = startStallProbe(ctx); err != nil {
			return r, err
		}
		defer probe.stop()
	}
	r.FixedFloor = paced(ctx, o.rate, o.duration, probe, floor)
	r.SatFloor = saturate(ctx, o.workers, o.duration, floor)
	// The profile covers the usageGate phases only, so it shows what the
	// gate path spends beside the floor's work.
	stopProfile, err := o.startProfile()
	if err != nil {
		return r, err
	}
	r.Fixed = paced(ctx, o.rate, o.duration, probe, gate)
	r.FixedKey = paced(ctx, o.rate, o.duration, probe, keyGate)
	r.Sat = saturate(ctx, o.workers, o.duration, gate)
	if err := stopProfile(); err != nil {
		return r, err
	}

	inProcess := func(ctx context.Context) error {
		g, err := b.app.Usage.Gate(ctx, orgID, gateMeter, 1)
		if err == nil && !g.Allowed {
			err = fmt.Errorf("in-process gate refused: %+v", g)
		}
		return err
	}
	sequential(ctx, inProcessGates/10, inProcess)
	r.InProcess = sequential(ctx, inProcessGates, inProcess)
	return r, nil
}

// enterpriseProbe runs the gate at saturation for a second on an
// organisation on the enterprise plan and counts the gates its plan's rate
// refused (allowed:false, RATE_LIMITED, as data: the plan's meters are
// unlimited), which is why the measured organisations are on a plan of
// their own.
func enterpriseProbe(ctx context.Context, b *bench, o options) (run, int, error) {
	_, token, err := b.org(ctx, "enterprise-probe", "enterprise")
	if err != nil {
		return run{}, 0, err
	}
	c := newGraphQL(b.baseURL, token)
	defer c.close()
	gateBody := body(gateQuery, map[string]any{"meter": gateMeter})
	var throttled atomic.Int64
	r := saturate(ctx, o.workers, time.Second, func(ctx context.Context) error {
		answer, err := c.post(ctx, gateBody)
		if err == nil && bytes.Contains(answer, []byte(`"allowed":false`)) {
			throttled.Add(1)
		}
		return err
	})
	return r, int(throttled.Load()), nil
}
