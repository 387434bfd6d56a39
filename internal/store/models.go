package store

import (
	"strings"
	"time"
)

// Organization is a tenant: the customer of the SaaS that Tollgate bills.
type Organization struct {
	ID               string `gorm:"primaryKey"`
	ExternalID       string // the `org` claim of the tenant's tokens
	Name             string
	BillingEmail     string
	StripeCustomerID *string // unique; nil until the first Checkout
	// PlanID is the effective plan. Billing keeps it equal to the
	// subscription's plan while that grants access, and free otherwise.
	PlanID    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Subscription mirrors one Stripe subscription.
type Subscription struct {
	ID                   string `gorm:"primaryKey"`
	OrgID                string
	StripeSubscriptionID string
	StripeCustomerID     string
	PriceID              string
	PlanID               string
	// PlanMismatch is set while none of the subscription's prices is in the
	// plans file; PlanID is then the last plan a known price named.
	PlanMismatch       bool
	Status             string // Stripe's status, lower-case
	CurrentPeriodStart *time.Time
	CurrentPeriodEnd   *time.Time
	CancelAtPeriodEnd  bool
	CanceledAt         *time.Time
	// LastEventAt is the `created` time of the newest Stripe event applied.
	LastEventAt *time.Time
	// LastEventRank orders updates within LastEventAt's second (see
	// billing.Rank).
	LastEventRank int
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// APIKey is a long-lived credential for a host backend. Only a hash of the
// secret is stored.
type APIKey struct {
	ID           string `gorm:"primaryKey"`
	OrgID        string
	Name         string
	ContactEmail string
	Prefix       string // the first characters of the secret, for display
	SecretHash   string
	Scopes       string // space-separated
	CreatedAt    time.Time
	LastUsedAt   *time.Time
	RevokedAt    *time.Time
	// SigningPublicKey is a base64 Ed25519 key; when set, every request made
	// with this key must be signed.
	SigningPublicKey *string
}

// ScopeList splits Scopes.
func (k APIKey) ScopeList() []string { return strings.Fields(k.Scopes) }

func (Organization) TableName() string { return "organizations" }
func (Subscription) TableName() string { return "subscriptions" }
func (APIKey) TableName() string       { return "api_keys" }
