package stripehook

import "time"

// WebhookEvent records a Stripe event that was applied. It is written in the
// same transaction as the event's effects, so an event is either recorded
// and applied, or neither; a redelivery finds the record and changes nothing.
type WebhookEvent struct {
	ID   string `gorm:"primaryKey"` // Stripe's event id
	Type string
	// CreatedAt is the event's `created` time at Stripe.
	CreatedAt   time.Time
	ProcessedAt time.Time
	// Outcome says what the event did: applied, stale, ignored, unknown_org…
	Outcome string
}

func (WebhookEvent) TableName() string { return "webhook_events" }
