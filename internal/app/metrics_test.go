package app_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
)

// TestMetricLabelsComeFromTheSchemaNotFromClients: operation names are
// client text, and /metrics is shared by every tenant (and readable by
// whoever reaches it). One tenant sending hundreds of distinct names must
// neither show them there nor push another tenant's operations out of
// their label.
func TestMetricLabelsComeFromTheSchemaNotFromClients(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	before, _ := operationCounts(t, h)
	for i := range 600 {
		h.Query("mallory", `query Secret`+strconv.Itoa(i)+`Name { organization { id } }`, nil)
	}
	h.Query("mallory", `query Typo { organizatio { id } }`, nil)
	h.Query("mallory", `mutation Many { a: createApiKey(input: {name: "a", scopes: [BILLING_READ]}) { secret } b: revokeApiKey(id: "x") { apiKey { id } } }`, nil)
	h.Query("acme", `query Dashboard { plans { id } }`, nil)
	after, text := operationCounts(t, h)
	if strings.Contains(text, "Secret") || strings.Contains(text, "Dashboard") || strings.Contains(text, "Typo") || strings.Contains(text, "Many") {
		t.Errorf("/metrics shows operation names clients chose")
	}
	want := map[string]int{
		`operation="organization",outcome="ok"`: 600,
		`operation="plans",outcome="ok"`:        1,
		`operation="none",outcome="error"`:      1, // refused by validation
		`operation="multiple",outcome="ok"`:     1,
	}
	for label, n := range want {
		if got := after[label] - before[label]; got != n {
			t.Errorf("%s counted %d operations, want %d", label, got, n)
		}
	}
	for label, n := range after {
		if _, expected := want[label]; !expected && n != before[label] {
			t.Errorf("operations counted under %s", label)
		}
	}
}

// operationCounts reads tollgate_graphql_operation_duration_seconds_count
// by its labels from /metrics, and the whole text.
func operationCounts(t *testing.T, h *apptest.Harness) (map[string]int, string) {
	t.Helper()
	b, _ := io.ReadAll(get(t, h.Server.URL+"/metrics", nil).Body)
	counts := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^tollgate_graphql_operation_duration_seconds_count\{(.*)\} (\d+)$`).FindAllStringSubmatch(string(b), -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	return counts, string(b)
}

// TestMetricsTokenGuardsMetrics: with METRICS_TOKEN set, /metrics answers
// only the bearer of that token.
func TestMetricsTokenGuardsMetrics(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	h := apptest.New(t, apptest.Options{Env: map[string]string{"METRICS_TOKEN": token}})
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer " + token[:31] + "0", http.StatusUnauthorized},
		{"Bearer " + token + "x", http.StatusUnauthorized},
		{"Bearer " + h.Token("acme"), http.StatusUnauthorized},
		{"Bearer " + token, http.StatusOK},
	} {
		headers := map[string]string{}
		if tc.auth != "" {
			headers["Authorization"] = tc.auth
		}
		resp := get(t, h.Server.URL+"/metrics", headers)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: %d, want %d", tc.auth, resp.StatusCode, tc.want)
		}
		if resp.StatusCode != http.StatusOK && strings.Contains(string(b), "tollgate_") {
			t.Errorf("Authorization %q: a refusal shows metrics", tc.auth)
		}
	}
}
