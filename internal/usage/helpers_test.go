package usage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// fakePlans stands in for billing: each organisation is on the plan a test
// puts it on, and was on the plans it was put on before, from the fake
// clock's time then.
type fakePlans struct {
	catalog *plans.Catalog
	clock   *clock.Fake
	mu      sync.Mutex
	planIDs map[string]string
	status  map[string]string
	history map[string][]plans.Span
}

func (f *fakePlans) PlansSince(_ context.Context, orgID string, t time.Time) ([]plans.Span, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []plans.Span
	for i, sp := range f.history[orgID] {
		if i+1 < len(f.history[orgID]) && !f.history[orgID][i+1].From.After(t) {
			continue // ended by t
		}
		out = append(out, sp)
	}
	if len(out) == 0 {
		return nil, apperr.ErrNotFound
	}
	out[0].From = t
	return out, nil
}

func (f *fakePlans) PlanOf(_ context.Context, orgID string) (plans.Plan, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.planIDs[orgID]
	if !ok {
		return plans.Plan{}, "", apperr.ErrNotFound
	}
	p, _ := f.catalog.ByID(id)
	return p, f.status[orgID], nil
}

func (f *fakePlans) set(orgID, planID, status string) {
	f.mu.Lock()
	f.planIDs[orgID], f.status[orgID] = planID, status
	p, _ := f.catalog.ByID(planID)
	f.history[orgID] = append(f.history[orgID], plans.Span{From: f.clock.Now(), Plan: p})
	f.mu.Unlock()
}

// fixture is a usage service on a real database, a Redis and a frozen clock.
type fixture struct {
	svc   *Service
	db    *store.DB
	rdb   *redisconn.Client
	clock *clock.Fake
	plans *fakePlans
}

// testNow is mid-month, so five minutes either way stays in March.
var testNow = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

func newFixture(t *testing.T, db *store.DB, rdb *redisconn.Client) *fixture {
	t.Helper()
	return newFixtureOf(t, db, rdb, plans.Default())
}

// newFixtureOf is newFixture with the plans of catalog.
func newFixtureOf(t *testing.T, db *store.DB, rdb *redisconn.Client, catalog *plans.Catalog) *fixture {
	t.Helper()
	if rdb == nil {
		rdb = testenv.Redis(t)
	}
	clk := clock.NewFake(testNow)
	fp := &fakePlans{catalog: catalog, clock: clk, planIDs: map[string]string{}, status: map[string]string{}, history: map[string][]plans.Span{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &fixture{svc: NewService(db, rdb, catalog, fp, clk, log), db: db, rdb: rdb, clock: clk, plans: fp}
}

// org creates an organisation on a plan.
func (f *fixture) org(t *testing.T, planID string) string {
	t.Helper()
	id := store.NewID()
	now := f.clock.Now()
	org := orgs.Organization{ID: id, ExternalID: "ext-" + id, Name: "Org " + id[:8], PlanID: planID, CreatedAt: now, UpdatedAt: now}
	if err := f.db.Create(&org).Error; err != nil {
		t.Fatalf("create organisation: %v", err)
	}
	f.plans.set(id, planID, "")
	return id
}

// setPlan moves an organisation to another plan, as a webhook would.
func (f *fixture) setPlan(orgID, planID, status string) {
	f.plans.set(orgID, planID, status)
	f.svc.InvalidatePlan(orgID)
}

// record records and fails the test on an error.
func (f *fixture) record(t *testing.T, orgID string, events ...Event) RecordResult {
	t.Helper()
	res, err := f.svc.Record(context.Background(), orgID, events)
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	return res
}

// used is a meter's usage in the current period, from the usage report.
func (f *fixture) used(t *testing.T, orgID, meter string) int64 {
	t.Helper()
	_, meters, err := f.svc.Usage(context.Background(), orgID, "")
	if err != nil {
		t.Fatalf("usage: %v", err)
	}
	for _, m := range meters {
		if m.Meter == meter {
			return m.Used
		}
	}
	t.Fatalf("meter %s missing from usage", meter)
	return 0
}

// gate asks the gate and fails the test on an error.
func (f *fixture) gate(t *testing.T, orgID, meter string) Gate {
	t.Helper()
	return f.gateOf(t, orgID, meter, 1)
}

// gateOf is the gate's answer about quantity more units.
func (f *fixture) gateOf(t *testing.T, orgID, meter string, quantity int64) Gate {
	t.Helper()
	g, err := f.svc.Gate(context.Background(), orgID, meter, quantity)
	if err != nil {
		t.Fatalf("gate: %v", err)
	}
	return g
}

// storedEvents counts the raw events of an organisation.
func (f *fixture) storedEvents(t *testing.T, orgID string) int64 {
	t.Helper()
	var n int64
	if err := f.db.Model(&UsageEvent{}).Where("org_id = ?", orgID).Count(&n).Error; err != nil {
		t.Fatalf("count events: %v", err)
	}
	return n
}

// ev is an event of quantity q with key k.
func ev(meter string, q int64, key string) Event {
	return Event{Meter: meter, Quantity: q, IdempotencyKey: key}
}

// batch is n events of quantity 1, keyed prefix-0 to prefix-(n-1).
func batch(meter, prefix string, n int) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = ev(meter, 1, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

func ptr[T any](v T) *T { return &v }
