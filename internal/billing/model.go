package billing

import "time"

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
	// Rank).
	LastEventRank int
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

func (Subscription) TableName() string { return "subscriptions" }
