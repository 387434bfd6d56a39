package graph_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/orgs"
)

const createKey = `mutation($in: CreateApiKeyInput!) {
  createApiKey(input: $in) {
    secret
    apiKey { id name prefix scopes lastUsedAt revokedAt }
    userErrors { field code message }
  }
}`

type createKeyResult struct {
	CreateAPIKey struct {
		Secret *string
		APIKey *struct {
			ID, Name, Prefix string
			Scopes           []string
			LastUsedAt       *string
			RevokedAt        *string
		}
		UserErrors []struct{ Field, Code, Message string }
	} `json:"createApiKey"`
}

// TestAPIKeyLifecycle: a key is shown once, authenticates with both headers
// within its scopes, records its use, and stops working when revoked.
func TestAPIKeyLifecycle(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{}, func(t *testing.T, h *apptest.Harness) {
		var created createKeyResult
		h.Query("acme", createKey, map[string]any{"in": map[string]any{
			"name": "search backend", "contactEmail": "ops@acme.io", "scopes": []string{"BILLING_READ", "USAGE_WRITE"},
		}}).Decode(t, &created)
		c := created.CreateAPIKey
		if len(c.UserErrors) > 0 || c.Secret == nil || c.APIKey == nil {
			t.Fatalf("create failed: %+v", c)
		}
		secret := *c.Secret
		if !strings.HasPrefix(secret, "tg_test_") || len(secret) < 40 {
			t.Fatalf("secret %q is not a tg_test_ key", secret)
		}
		if !strings.HasPrefix(secret, c.APIKey.Prefix) || len(c.APIKey.Prefix) >= len(secret)/2 {
			t.Fatalf("prefix %q should be a short start of the secret", c.APIKey.Prefix)
		}

		t.Run("the secret is not stored or listed", func(t *testing.T) {
			var n int64
			h.App.DB.Model(&auth.APIKey{}).Where("secret_hash = ?", secret).Count(&n)
			if n != 0 {
				t.Fatal("secret stored in clear")
			}
			r := h.Query("acme", `{ apiKeys { id name prefix } }`, nil)
			if strings.Contains(string(r.Data), secret) {
				t.Fatal("apiKeys returned the secret")
			}
		})

		for _, hdr := range []map[string]string{{"X-API-Key": secret}, {"Authorization": "Bearer " + secret}} {
			r := h.Do(hdr, `{ organization { externalId } }`, nil)
			var out struct{ Organization struct{ ExternalID string } }
			r.Decode(t, &out)
			if out.Organization.ExternalID != "acme" {
				t.Fatalf("key authenticated as %q", out.Organization.ExternalID)
			}
		}
		t.Run("a key cannot exceed its scopes", func(t *testing.T) {
			r := h.Do(map[string]string{"X-API-Key": secret}, `mutation { createApiKey(input: {name: "escalate", scopes: [BILLING_WRITE]}) { secret } }`, nil)
			if r.Code() != "FORBIDDEN" {
				t.Fatalf("code = %q, want FORBIDDEN", r.Code())
			}
		})
		t.Run("last use is recorded", func(t *testing.T) {
			var out struct {
				APIKeys []struct{ LastUsedAt *string }
			}
			// Written in the background: asked until it shows, for a while.
			for start := time.Now(); ; {
				h.Query("acme", `{ apiKeys { lastUsedAt } }`, nil).Decode(t, &out)
				if len(out.APIKeys) == 1 && out.APIKeys[0].LastUsedAt != nil {
					break
				}
				if time.Since(start) > 5*time.Second {
					t.Fatalf("lastUsedAt not set after 5 s: %+v", out.APIKeys)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
		t.Run("another organisation cannot revoke it", func(t *testing.T) {
			var out struct {
				RevokeAPIKey struct {
					APIKey     *struct{ ID string }
					UserErrors []struct{ Field, Code string }
				} `json:"revokeApiKey"`
			}
			r := h.Query("intruder", `mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { id } userErrors { field code } } }`, map[string]any{"id": c.APIKey.ID})
			r.Decode(t, &out)
			if ue := out.RevokeAPIKey.UserErrors; out.RevokeAPIKey.APIKey != nil || len(ue) != 1 || ue[0].Code != "NOT_FOUND" || ue[0].Field != "id" {
				t.Fatalf("revoke of another organisation's key = %+v, want userErrors id NOT_FOUND", out.RevokeAPIKey)
			}
			if r := h.Do(map[string]string{"X-API-Key": secret}, `{ organization { id } }`, nil); len(r.Errors) > 0 {
				t.Fatalf("key stopped working after another org's revoke attempt: %+v", r.Errors)
			}
		})
		t.Run("revoked keys are refused", func(t *testing.T) {
			var out struct {
				RevokeAPIKey struct{ APIKey struct{ RevokedAt *string } } `json:"revokeApiKey"`
			}
			h.Query("acme", `mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { revokedAt } } }`, map[string]any{"id": c.APIKey.ID}).Decode(t, &out)
			if out.RevokeAPIKey.APIKey.RevokedAt == nil {
				t.Fatal("revokedAt not set")
			}
			r := h.Do(map[string]string{"X-API-Key": secret}, `{ organization { id } }`, nil)
			if r.Code() != "UNAUTHENTICATED" || r.Errors[0].Extensions["reason"] != auth.ReasonRevokedKey {
				t.Fatalf("revoked key: %+v", r.Errors)
			}
		})
	})
}

// TestCreateAPIKeyValidation: each invalid field is reported as a userError
// and no key is created.
func TestCreateAPIKeyValidation(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	long := strings.Repeat("a", 201)
	longEmail := strings.Repeat("a", 310) + "@example.com"
	cases := []struct {
		name  string
		in    map[string]any
		field string
		code  string
	}{
		{"empty name", map[string]any{"name": " ", "scopes": []string{"BILLING_READ"}}, "input.name", "REQUIRED"},
		{"one-character name", map[string]any{"name": "a", "scopes": []string{"BILLING_READ"}}, "input.name", "TOO_SHORT"},
		{"201-character name", map[string]any{"name": long, "scopes": []string{"BILLING_READ"}}, "input.name", "TOO_LONG"},
		{"malformed email", map[string]any{"name": "ok", "contactEmail": "not-an-email", "scopes": []string{"BILLING_READ"}}, "input.contactEmail", "INVALID_EMAIL"},
		{"email with display name", map[string]any{"name": "ok", "contactEmail": "Bob <bob@x.io>", "scopes": []string{"BILLING_READ"}}, "input.contactEmail", "INVALID_EMAIL"},
		{"322-character email", map[string]any{"name": "ok", "contactEmail": longEmail, "scopes": []string{"BILLING_READ"}}, "input.contactEmail", "TOO_LONG"},
		{"no scopes", map[string]any{"name": "ok", "scopes": []string{}}, "input.scopes", "REQUIRED"},
		{"name with a newline", map[string]any{"name": "search\nbackend", "scopes": []string{"BILLING_READ"}}, "input.name", "INVALID"},
		{"name with a NUL", map[string]any{"name": "search\x00backend", "scopes": []string{"BILLING_READ"}}, "input.name", "INVALID"},
		{"name with an escape sequence", map[string]any{"name": "\x1b[31mred", "scopes": []string{"BILLING_READ"}}, "input.name", "INVALID"},
		{"name led by a tab", map[string]any{"name": "\tsearch", "scopes": []string{"BILLING_READ"}}, "input.name", "INVALID"},
		{"name with a bidi override", map[string]any{"name": "key\u202egnp.exe", "scopes": []string{"BILLING_READ"}}, "input.name", "INVALID"},
		{"name with a DEL", map[string]any{"name": "search\x7f", "scopes": []string{"BILLING_READ"}}, "input.name", "INVALID"},
		{"email with a newline", map[string]any{"name": "ok", "contactEmail": "ops@acme.io\n", "scopes": []string{"BILLING_READ"}}, "input.contactEmail", "INVALID_EMAIL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out createKeyResult
			h.Query("acme", createKey, map[string]any{"in": tc.in}).Decode(t, &out)
			c := out.CreateAPIKey
			if c.Secret != nil || c.APIKey != nil {
				t.Fatal("a key was returned despite invalid input")
			}
			if len(c.UserErrors) != 1 || c.UserErrors[0].Field != tc.field || c.UserErrors[0].Code != tc.code {
				t.Fatalf("userErrors = %+v, want %s %s", c.UserErrors, tc.field, tc.code)
			}
		})
	}
	var n int64
	h.App.DB.Model(&auth.APIKey{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d keys written by invalid requests", n)
	}
}

// TestCreateAPIKeyOnlyGrantsScopesTheCreatorHolds: a credential with only
// billing:write cannot mint a key that reads invoices or records usage.
func TestCreateAPIKeyOnlyGrantsScopesTheCreatorHolds(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	writer := map[string]string{"Authorization": "Bearer " + h.Token("acme", auth.BillingWrite)}
	var out createKeyResult
	h.Do(writer, createKey, map[string]any{"in": map[string]any{
		"name": "escalate", "scopes": []string{"BILLING_READ", "USAGE_WRITE", "BILLING_WRITE"},
	}}).Decode(t, &out)
	c := out.CreateAPIKey
	if c.Secret != nil || c.APIKey != nil {
		t.Fatalf("a key was minted with scopes its creator lacks: %+v", c.APIKey)
	}
	if len(c.UserErrors) != 1 || c.UserErrors[0].Field != "input.scopes" || c.UserErrors[0].Code != "SCOPE_NOT_HELD" {
		t.Fatalf("userErrors = %+v, want input.scopes SCOPE_NOT_HELD", c.UserErrors)
	}
	for _, lacking := range []string{"billing:read", "usage:write"} {
		if !strings.Contains(c.UserErrors[0].Message, lacking) {
			t.Errorf("message %q does not name %s", c.UserErrors[0].Message, lacking)
		}
	}
	var n int64
	h.App.DB.Model(&auth.APIKey{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d keys written", n)
	}

	h.Do(writer, createKey, map[string]any{"in": map[string]any{"name": "same scopes", "scopes": []string{"BILLING_WRITE"}}}).Decode(t, &out)
	if c := out.CreateAPIKey; len(c.UserErrors) > 0 || c.Secret == nil {
		t.Fatalf("a key within the creator's scopes was refused: %+v", c.UserErrors)
	}
}

// TestMutationsNamingNoRowAnswerUserErrorsNotFound: every mutation that
// takes an id answers an id of another organisation, an unknown one, or one
// that cannot exist, the same way: a userErrors entry NOT_FOUND, with no
// top-level error and nothing changed.
func TestMutationsNamingNoRowAnswerUserErrorsNotFound(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{}, func(t *testing.T, h *apptest.Harness) {
		var victim struct{ Organization struct{ ID string } }
		h.Query("victim", `{ organization { id } }`, nil).Decode(t, &victim)
		h.App.DB.Model(&orgs.Organization{}).Where("id = ?", victim.Organization.ID).Update("plan_id", "enterprise")
		h.App.Usage.InvalidatePlan(victim.Organization.ID)
		var key createKeyResult
		h.Query("victim", createKey, map[string]any{"in": map[string]any{"name": "victim key", "scopes": []string{"BILLING_READ"}}}).Decode(t, &key)
		var ep createEndpointResult
		h.Query("victim", createEndpoint, map[string]any{"in": map[string]any{"url": "https://hooks.victim.test/", "events": []string{"invoice.paid"}}}).Decode(t, &ep)
		if key.CreateAPIKey.APIKey == nil || ep.CreateWebhookEndpoint.WebhookEndpoint == nil {
			t.Fatalf("setup failed: %+v %+v", key.CreateAPIKey, ep.CreateWebhookEndpoint)
		}
		ids := map[string]string{
			"another organisation's key":      key.CreateAPIKey.APIKey.ID,
			"another organisation's endpoint": ep.CreateWebhookEndpoint.WebhookEndpoint.ID,
			"an unknown uuid":                 "5f0c2a4e-0000-4000-8000-000000000001",
			"a NUL":                           "\x00",
			"300 bytes":                       strings.Repeat("x", 300),
		}
		mutations := map[string]struct {
			doc  string
			vars func(id string) map[string]any
		}{
			"revokeApiKey": {`mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { id } userErrors { field code } } }`,
				func(id string) map[string]any { return map[string]any{"id": id} }},
			"registerSigningKey": {`mutation($in: RegisterSigningKeyInput!) { registerSigningKey(input: $in) { apiKey { id } userErrors { field code } } }`,
				func(id string) map[string]any {
					return map[string]any{"in": map[string]any{"apiKeyId": id, "publicKey": "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="}}
				}},
			"updateWebhookEndpoint": {`mutation($in: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $in) { webhookEndpoint { id } userErrors { field code } } }`,
				func(id string) map[string]any {
					return map[string]any{"in": map[string]any{"id": id, "enabled": false}}
				}},
			"deleteWebhookEndpoint": {`mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { deletedId userErrors { field code } } }`,
				func(id string) map[string]any { return map[string]any{"id": id} }},
			"retryWebhookDelivery": {`mutation($id: ID!) { retryWebhookDelivery(id: $id) { webhookDelivery { id } userErrors { field code } } }`,
				func(id string) map[string]any { return map[string]any{"id": id} }},
		}
		for mname, m := range mutations {
			for iname, id := range ids {
				t.Run(mname+" of "+iname, func(t *testing.T) {
					r := h.Query("intruder", m.doc, m.vars(id))
					if len(r.Errors) > 0 {
						t.Fatalf("top-level errors %+v, want a userErrors entry", r.Errors)
					}
					var out map[string]struct {
						UserErrors []struct{ Field, Code string }
					}
					r.Decode(t, &out)
					ue := out[mname].UserErrors
					if len(ue) != 1 || ue[0].Code != "NOT_FOUND" {
						t.Fatalf("userErrors = %+v, want one NOT_FOUND (data %s)", ue, r.Data)
					}
				})
			}
		}
		// Nothing of the victim's changed.
		if r := h.Do(map[string]string{"X-API-Key": *key.CreateAPIKey.Secret}, `{ organization { id } }`, nil); len(r.Errors) > 0 {
			t.Fatalf("the victim's key stopped working: %+v", r.Errors)
		}
		var eps struct{ WebhookEndpoints []struct{ Status string } }
		h.Query("victim", `{ webhookEndpoints { status } }`, nil).Decode(t, &eps)
		if len(eps.WebhookEndpoints) != 1 || eps.WebhookEndpoints[0].Status != "ENABLED" {
			t.Fatalf("the victim's endpoints changed: %+v", eps.WebhookEndpoints)
		}
	})
}

// TestAPIKeysArePagedAndCapped: apiKeys pages by first and the last key's
// id, refuses a page of fewer than one key as invoices does, still answers
// every key without arguments; and a key beyond auth.MaxActiveKeys is a
// userErrors TOO_MANY_API_KEYS.
func TestAPIKeysArePagedAndCapped(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	for _, name := range []string{"one", "two", "three"} {
		h.Clock.Advance(time.Second)
		var out createKeyResult
		h.Query("acme", createKey, map[string]any{"in": map[string]any{"name": "key " + name, "scopes": []string{"BILLING_READ"}}}).Decode(t, &out)
		if out.CreateAPIKey.APIKey == nil {
			t.Fatalf("create: %+v", out.CreateAPIKey)
		}
	}
	type page struct {
		APIKeys []struct{ ID, Name string }
	}
	const q = `query($first: Int, $after: ID) { apiKeys(first: $first, after: $after) { id name } }`
	var all, first, rest page
	h.Query("acme", `{ apiKeys { id name } }`, nil).Decode(t, &all)
	if len(all.APIKeys) != 3 || all.APIKeys[0].Name != "key three" {
		t.Fatalf("apiKeys without arguments = %+v, want all three, newest first", all.APIKeys)
	}
	h.Query("acme", q, map[string]any{"first": 2}).Decode(t, &first)
	h.Query("acme", q, map[string]any{"first": 2, "after": first.APIKeys[len(first.APIKeys)-1].ID}).Decode(t, &rest)
	if len(first.APIKeys) != 2 || len(rest.APIKeys) != 1 || first.APIKeys[0] != all.APIKeys[0] || first.APIKeys[1] != all.APIKeys[1] || rest.APIKeys[0] != all.APIKeys[2] {
		t.Fatalf("pages %+v then %+v, want %+v split 2+1", first.APIKeys, rest.APIKeys, all.APIKeys)
	}
	for _, n := range []int{0, -1} {
		r := h.Query("acme", q, map[string]any{"first": n})
		if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Message != "first must be at least 1" {
			t.Errorf("apiKeys(first: %d) = %s %+v, want BAD_USER_INPUT", n, r.Data, r.Errors)
		}
	}
	if r := h.Query("globex", q, map[string]any{"first": 2, "after": all.APIKeys[0].ID}); r.Code() != "BAD_USER_INPUT" {
		t.Errorf("another organisation's key id as after = %s %+v, want BAD_USER_INPUT", r.Data, r.Errors)
	}

	// Fill the organisation up to the cap, then ask for one more.
	var orgID string
	h.App.DB.Model(&auth.APIKey{}).Where("name = ?", "key one").Pluck("org_id", &orgID)
	for i := len(all.APIKeys); i < auth.MaxActiveKeys; i++ {
		k := auth.APIKey{ID: uuid.NewString(), OrgID: orgID, Name: "filler", Prefix: "tg_test_x", SecretHash: uuid.NewString(), Scopes: "billing:read", CreatedAt: h.Clock.Now()}
		if err := h.App.DB.Create(&k).Error; err != nil {
			t.Fatal(err)
		}
	}
	var over createKeyResult
	h.Query("acme", createKey, map[string]any{"in": map[string]any{"name": "one too many", "scopes": []string{"BILLING_READ"}}}).Decode(t, &over)
	if c := over.CreateAPIKey; c.APIKey != nil || c.Secret != nil || len(c.UserErrors) != 1 || c.UserErrors[0].Code != "TOO_MANY_API_KEYS" || !strings.Contains(c.UserErrors[0].Message, "100") {
		t.Fatalf("key %d = %+v, want userErrors TOO_MANY_API_KEYS", auth.MaxActiveKeys+1, c)
	}
	var revoked struct {
		RevokeAPIKey struct{ UserErrors []struct{ Code string } } `json:"revokeApiKey"`
	}
	h.Query("acme", `mutation($id: ID!) { revokeApiKey(id: $id) { userErrors { code } } }`, map[string]any{"id": all.APIKeys[0].ID}).Decode(t, &revoked)
	h.Query("acme", createKey, map[string]any{"in": map[string]any{"name": "in its place", "scopes": []string{"BILLING_READ"}}}).Decode(t, &over)
	if over.CreateAPIKey.APIKey == nil {
		t.Fatalf("after a revoke, a key was still refused: %+v", over.CreateAPIKey.UserErrors)
	}
}
