package usage

import "time"

// UsageEvent is one recorded unit of usage. It has no unique key: what
// makes a retried event count once is its row in usage_event_keys.
type UsageEvent struct {
	OrgID          string
	IdempotencyKey string
	Meter          string
	Quantity       int64
	Endpoint       string // "" when the host did not say
	OccurredAt     time.Time
	RecordedAt     time.Time
}

// UsageRollup is the total of one meter in one period. Meters that never
// reset keep a single row whose PeriodStart is the Unix epoch.
type UsageRollup struct {
	OrgID       string    `gorm:"primaryKey"`
	Meter       string    `gorm:"primaryKey"`
	PeriodStart time.Time `gorm:"primaryKey"`
	Used        int64
	// Version grows with every change, so caches can tell newer from older.
	Version   int64
	UpdatedAt time.Time
}

// UsageEndpointRollup is the usage of one meter by one endpoint in one UTC
// month.
type UsageEndpointRollup struct {
	OrgID       string    `gorm:"primaryKey"`
	PeriodStart time.Time `gorm:"primaryKey"`
	Meter       string    `gorm:"primaryKey"`
	Endpoint    string    `gorm:"primaryKey"`
	Used        int64
	UpdatedAt   time.Time
}

// UsageDailyRollup is the usage of one meter on one UTC day (Day is
// midnight).
type UsageDailyRollup struct {
	OrgID     string    `gorm:"primaryKey"`
	Meter     string    `gorm:"primaryKey"`
	Day       time.Time `gorm:"primaryKey"`
	Used      int64
	UpdatedAt time.Time
}

func (UsageEvent) TableName() string          { return "usage_events" }
func (UsageRollup) TableName() string         { return "usage_rollups" }
func (UsageEndpointRollup) TableName() string { return "usage_endpoint_rollups" }
func (UsageDailyRollup) TableName() string    { return "usage_daily_rollups" }
