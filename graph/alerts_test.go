package graph_test

import (
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
)

const setUsageAlerts = `mutation($meter: String!, $percents: [Int!]!) {
  setUsageAlerts(meter: $meter, percents: $percents) {
    usageAlerts { meter percents }
    userErrors { field code message }
  }
}`

const usageAlerts = `{ usageAlerts { meter period percent used limit limitReached firedAt } }`

type alertsResult struct {
	UsageAlerts []struct {
		Meter        string
		Period       *string
		Percent      int
		Used, Limit  int64
		LimitReached bool
	}
}

// A dashboard sets its own thresholds, bad ones come back as userErrors,
// and the alerts that fired are listed with the 100% of a hard limit marked.
func TestUsageAlertsThroughTheAPI(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{}, func(t *testing.T, h *apptest.Harness) {
		var bad struct {
			SetUsageAlerts struct {
				UsageAlerts *struct{ Meter string }
				UserErrors  []struct{ Field, Code string }
			}
		}
		h.Query("acme", setUsageAlerts, map[string]any{"meter": "api_calls", "percents": []int{0, 50}}).Decode(t, &bad)
		if bad.SetUsageAlerts.UsageAlerts != nil || len(bad.SetUsageAlerts.UserErrors) != 1 || bad.SetUsageAlerts.UserErrors[0].Field != "percents" {
			t.Fatalf("0%% threshold answered %+v, want a userError on percents", bad.SetUsageAlerts)
		}
		reader := map[string]string{"Authorization": "Bearer " + h.Token("acme", auth.BillingRead)}
		if r := h.Do(reader, setUsageAlerts, map[string]any{"meter": "api_calls", "percents": []int{50}}); r.Code() != "FORBIDDEN" {
			t.Fatalf("billing:read set alerts: code %q, want FORBIDDEN", r.Code())
		}

		var set struct {
			SetUsageAlerts struct {
				UsageAlerts struct {
					Meter    string
					Percents []int
				}
			}
		}
		h.Query("acme", setUsageAlerts, map[string]any{"meter": "api_calls", "percents": []int{100, 50}}).Decode(t, &set)
		if got := set.SetUsageAlerts.UsageAlerts.Percents; len(got) != 2 || got[0] != 50 || got[1] != 100 {
			t.Fatalf("percents stored = %v, want [50 100]", got)
		}

		var rec recordResult
		one := func(q int64, key string) map[string]any {
			return map[string]any{"events": []map[string]any{{"meter": "api_calls", "quantity": q, "idempotencyKey": key}}}
		}
		h.Query("acme", recordUsage, one(600, "half")).Decode(t, &rec)
		limit := *rec.RecordUsage.Usage[0].Limit
		h.Query("acme", recordUsage, one(limit-600, "rest")).Decode(t, &rec)

		var got alertsResult
		h.Query("acme", usageAlerts, nil).Decode(t, &got)
		if len(got.UsageAlerts) != 2 {
			t.Fatalf("alerts = %+v, want 50%% and 100%%", got.UsageAlerts)
		}
		half, full := got.UsageAlerts[0], got.UsageAlerts[1]
		if half.Percent != 50 || half.Used != 600 || half.LimitReached || half.Period == nil {
			t.Errorf("first alert = %+v, want 50%% at 600 used", half)
		}
		if full.Percent != 100 || full.Used != limit || !full.LimitReached || full.Limit != limit {
			t.Errorf("second alert = %+v, want the hard limit %d reached", full, limit)
		}
	})
}
