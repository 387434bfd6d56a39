package auth

import (
	"strings"
	"time"
)

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

func (APIKey) TableName() string { return "api_keys" }
