package outbound

import (
	"strings"
	"time"

	"github.com/tollgate-billing/tollgate/internal/weburl"
)

// endpointRow is a webhook_endpoints row.
type endpointRow struct {
	ID             string `gorm:"primaryKey"`
	OrgID          string
	URL            string
	Events         string // space-separated
	Secret         string
	Status         string
	FailingSince   *time.Time
	DisabledAt     *time.Time
	DisabledReason string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func (endpointRow) TableName() string { return "webhook_endpoints" }

func (e endpointRow) subscribes(eventType string) bool {
	for _, t := range strings.Fields(e.Events) {
		if t == eventType || t == AllEvents {
			return true
		}
	}
	return false
}

// eventRow is an outbound_events row.
type eventRow struct {
	ID        string `gorm:"primaryKey"`
	OrgID     string
	Sequence  int64
	Type      string
	Payload   string
	CreatedAt time.Time
}

func (eventRow) TableName() string { return "outbound_events" }

// deliveryRow is a webhook_deliveries row.
type deliveryRow struct {
	ID          string `gorm:"primaryKey"`
	OrgID       string
	EndpointID  string
	EventID     string
	Status      string
	Attempts    int
	DeliveredAt *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (deliveryRow) TableName() string { return "webhook_deliveries" }

// attemptRow is a webhook_delivery_attempts row.
type attemptRow struct {
	ID          string `gorm:"primaryKey"`
	DeliveryID  string
	Number      int
	AttemptedAt time.Time
	StatusCode  *int
	LatencyMS   int64 `gorm:"column:latency_ms"`
	Error       string
}

func (attemptRow) TableName() string { return "webhook_delivery_attempts" }

// Endpoint statuses.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// Endpoint is a webhook endpoint as the organisation sees it (no secret).
type Endpoint struct {
	ID             string
	URL            string
	Events         []string
	Status         string
	FailingSince   *time.Time
	DisabledAt     *time.Time
	DisabledReason string
	CreatedAt      time.Time
}

func (e endpointRow) view() Endpoint {
	return Endpoint{
		// Redacted: an endpoint saved before URLs with credentials were
		// refused must not show them to every billing:read caller.
		ID: e.ID, URL: weburl.Redact(e.URL), Events: strings.Fields(e.Events), Status: e.Status,
		FailingSince: e.FailingSince, DisabledAt: e.DisabledAt, DisabledReason: weburl.RedactText(e.DisabledReason),
		CreatedAt: e.CreatedAt,
	}
}

// Delivery is one event sent (or being sent) to one endpoint.
type Delivery struct {
	ID          string
	EndpointID  string
	EventID     string
	EventType   string
	Sequence    int64
	Status      string
	Attempts    []Attempt
	CreatedAt   time.Time
	DeliveredAt *time.Time
}

// Attempt is one HTTP request of a delivery.
type Attempt struct {
	At time.Time
	// StatusCode is 0 when no response came (timeout, refused connection).
	StatusCode int
	Latency    time.Duration
	Error      string
}
