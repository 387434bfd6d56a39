package graph_test

import (
	"fmt"
	"maps"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
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

const usageAlertSettings = `{ usageAlertSettings { meter percents own } }`

type alertSettings struct {
	UsageAlertSettings []struct {
		Meter    string
		Percents []int
		Own      bool
	}
}

// settingsOf reads org's thresholds in force, by meter.
func settingsOf(t *testing.T, h *apptest.Harness, org string) map[string]string {
	t.Helper()
	var out alertSettings
	h.Query(org, usageAlertSettings, nil).Decode(t, &out)
	got := map[string]string{}
	for _, s := range out.UsageAlertSettings {
		got[s.Meter] = fmt.Sprintf("%v own=%v", s.Percents, s.Own)
	}
	return got
}

// TestUsageAlertSettingsReadBackWhatIsInForce: a dashboard that set its
// thresholds with setUsageAlerts can read them back, and one that never did
// sees the plan's; a meter the plan does not limit has none. There was no
// way to read them: the settings page forgot them on every reload.
func TestUsageAlertSettingsReadBackWhatIsInForce(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{}, func(t *testing.T, h *apptest.Harness) {
		plan := fmt.Sprint(plans.DefaultAlerts) + " own=false"
		want := map[string]string{"api_calls": plan, "llm_tokens": plan, "storage_bytes": plan}
		if got := settingsOf(t, h, "acme"); !maps.Equal(got, want) {
			t.Fatalf("before any setUsageAlerts: %v, want the plan's %v", got, want)
		}
		h.Query("acme", setUsageAlerts, map[string]any{"meter": "api_calls", "percents": []int{90, 25}}).Decode(t, &struct{}{})
		h.Query("acme", setUsageAlerts, map[string]any{"meter": "llm_tokens", "percents": []int{}}).Decode(t, &struct{}{})
		want["api_calls"], want["llm_tokens"] = "[25 90] own=true", "[] own=true"
		if got := settingsOf(t, h, "acme"); !maps.Equal(got, want) {
			t.Fatalf("after setUsageAlerts: %v, want %v", got, want)
		}
		if got := settingsOf(t, h, "other"); got["api_calls"] != plan {
			t.Errorf("another organisation reads %v, want the plan's", got)
		}

		var org struct{ Organization struct{ ID string } }
		h.Query("acme", `{ organization { id } }`, nil).Decode(t, &org)
		h.App.DB.Model(&orgs.Organization{}).Where("id = ?", org.Organization.ID).Update("plan_id", "enterprise")
		h.App.Usage.InvalidatePlan(org.Organization.ID)
		want = map[string]string{"api_calls": "[] own=true", "llm_tokens": "[] own=true", "storage_bytes": "[] own=false"}
		if got := settingsOf(t, h, "acme"); !maps.Equal(got, want) {
			t.Fatalf("on an unlimited plan: %v, want none in force %v", got, want)
		}
	})
}
