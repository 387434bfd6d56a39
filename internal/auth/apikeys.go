package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/usertext"
)

// KeyPrefix starts every API key secret, so secret scanners and readers can
// recognise one.
const KeyPrefix = "tg_"

// Keys manages API keys.
type Keys struct {
	db    *store.DB
	clock clock.Clock
	// live is "live" in production and "test" elsewhere: tg_live_… or tg_test_….
	live string
	// touched throttles last_used_at writes to one a minute per key.
	touched *cache.Cache[string, struct{}]
	// cache remembers authenticated keys (see keycache.go); nil until
	// ShareChanges.
	cache *keyCache
	// loads shares a database read of a key among the requests that need
	// it at once.
	loads cache.Loads[APIKey]
}

// NewKeys returns the API key service.
func NewKeys(db *store.DB, c clock.Clock, production bool) *Keys {
	mode := "test"
	if production {
		mode = "live"
	}
	return &Keys{db: db, clock: c, live: mode, touched: cache.New[string, struct{}](maxCachedKeys, time.Minute, c)}
}

// CreateKeyInput is what a caller asks for.
type CreateKeyInput struct {
	Name         string
	ContactEmail string
	Scopes       []Scope
	// CreatorScopes are the scopes of the credential asking for the key: a
	// key may hold only scopes its creator holds, or any credential with
	// billing:write could mint itself every other scope.
	CreatorScopes []Scope
}

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomString(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		x, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("crypto/rand failed: " + err.Error())
		}
		b[i] = alphabet[x.Int64()]
	}
	return string(b)
}

// HashSecret is how secrets are stored: they are 43 random base62 characters,
// so a fast hash is enough; a slow one would only slow every request.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CodeScopeNotHeld is the userErrors code for asking a new key to hold a
// scope its creator lacks.
const CodeScopeNotHeld = "SCOPE_NOT_HELD"

// MaxNameLen bounds a key's name, in characters.
const MaxNameLen = 200

// ValidateCreate checks a key request, as userErrors.
func ValidateCreate(in CreateKeyInput) apperr.FieldErrors {
	var fe apperr.FieldErrors
	name := strings.TrimSpace(in.Name)
	switch n := utf8.RuneCountInString(name); {
	case !usertext.Printable(in.Name):
		// Judged before trimming: "\tname" is refused, not stored as
		// "name" with the caller never told.
		fe.Add("input.name", "INVALID", "name must be UTF-8 text without control or invisible formatting characters")
	case n == 0:
		fe.Add("input.name", "REQUIRED", "name is required")
	case n < 2:
		fe.Add("input.name", "TOO_SHORT", "name must be at least 2 characters")
	case n > MaxNameLen:
		fe.Add("input.name", "TOO_LONG", fmt.Sprintf("name must be at most %d characters", MaxNameLen))
	}
	if in.ContactEmail != "" {
		if len(in.ContactEmail) > usertext.MaxEmailLen {
			fe.Add("input.contactEmail", "TOO_LONG", fmt.Sprintf("contactEmail must be at most %d characters", usertext.MaxEmailLen))
		} else if !usertext.Email(in.ContactEmail) {
			fe.Add("input.contactEmail", "INVALID_EMAIL", "contactEmail must be an email address like dev@example.com")
		}
	}
	if len(in.Scopes) == 0 {
		fe.Add("input.scopes", "REQUIRED", "give the key at least one scope")
	}
	var notHeld []string
	for _, s := range in.Scopes {
		if !slices.Contains(in.CreatorScopes, s) && !slices.Contains(notHeld, string(s)) {
			notHeld = append(notHeld, string(s))
		}
	}
	if len(notHeld) > 0 {
		fe.Add("input.scopes", CodeScopeNotHeld, "a key may only hold scopes you hold yourself; you lack "+strings.Join(notHeld, ", "))
	}
	return fe
}

// Create stores a new key and returns it with its secret, which is not kept.
func (k *Keys) Create(ctx context.Context, orgID string, in CreateKeyInput) (APIKey, string, error) {
	if fe := ValidateCreate(in); len(fe) > 0 {
		return APIKey{}, "", fe
	}
	secret := KeyPrefix + k.live + "_" + randomString(43)
	var scopes []string
	for _, s := range in.Scopes {
		if !slices.Contains(scopes, string(s)) {
			scopes = append(scopes, string(s))
		}
	}
	key := APIKey{
		ID:           store.NewID(),
		OrgID:        orgID,
		Name:         strings.TrimSpace(in.Name),
		ContactEmail: in.ContactEmail,
		Prefix:       secret[:len(KeyPrefix)+len(k.live)+1+6],
		SecretHash:   HashSecret(secret),
		Scopes:       strings.Join(scopes, " "),
		CreatedAt:    k.clock.Now(),
	}
	err := k.db.Tx(ctx, func(tx *gorm.DB) error {
		// The organisation's row serialises concurrent creates, so two
		// cannot both see room for one more.
		if _, ok, err := orgs.Lock(ctx, k.db, tx, orgID); err != nil || !ok {
			if err == nil {
				err = apperr.ErrNotFound
			}
			return err
		}
		var n int64
		if err := tx.Model(&APIKey{}).Where("org_id = ? AND revoked_at IS NULL", orgID).Count(&n).Error; err != nil {
			return fmt.Errorf("count api keys of org %s: %w", orgID, err)
		}
		if n >= MaxActiveKeys {
			var fe apperr.FieldErrors
			fe.Add("", CodeTooManyKeys, fmt.Sprintf("An organisation may have at most %d active API keys; revoke one it no longer uses.", MaxActiveKeys))
			return fe
		}
		if err := tx.Create(&key).Error; err != nil {
			return fmt.Errorf("create api key for org %s: %w", orgID, err)
		}
		return nil
	})
	if err != nil {
		return APIKey{}, "", err
	}
	return key, secret, nil
}

// MaxActiveKeys caps an organisation's keys that are not revoked: each is a
// live credential to audit, and every one is another row to read on a cache
// miss. Revoked keys do not count.
const MaxActiveKeys = 100

// CodeTooManyKeys is the userErrors code for creating a key beyond
// MaxActiveKeys.
const CodeTooManyKeys = "TOO_MANY_API_KEYS"

// MaxPageSize caps one page of List; DefaultPageSize is a page when the
// caller names none, large enough to hold every active key.
const (
	MaxPageSize     = 100
	DefaultPageSize = 100
)

// List returns up to first of the organisation's keys, newest first,
// revoked ones included; after, when given, is the id of the last key of
// the previous page. first above MaxPageSize is capped; below 1, or an after
// that names none of the organisation's keys, is BAD_USER_INPUT.
func (k *Keys) List(ctx context.Context, orgID string, first int, after string) ([]APIKey, error) {
	if first < 1 {
		return nil, apperr.ArgError("first", "first must be at least 1")
	}
	first = min(first, MaxPageSize)
	q := k.db.WithContext(ctx).Where("org_id = ?", orgID)
	if after != "" {
		badAfter := apperr.BadCursor(nil)
		if !store.PlausibleID(after) {
			return nil, badAfter
		}
		var last APIKey
		err := k.db.WithContext(ctx).Select("id", "created_at").Where("org_id = ? AND id = ?", orgID, after).Take(&last).Error
		if store.IsNotFound(err) {
			return nil, badAfter
		}
		if err != nil {
			return nil, fmt.Errorf("load api key %s: %w", after, err)
		}
		// Row-value comparison follows the (created_at DESC, id DESC) order.
		q = q.Where("(created_at, id) < (?, ?)", last.CreatedAt, last.ID)
	}
	var keys []APIKey
	if err := q.Order("created_at DESC, id DESC").Limit(first).Find(&keys).Error; err != nil {
		return nil, fmt.Errorf("list api keys for org %s: %w", orgID, err)
	}
	return keys, nil
}

// Get returns one of the organisation's keys.
func (k *Keys) Get(ctx context.Context, orgID, id string) (APIKey, error) {
	var key APIKey
	if !store.PlausibleID(id) {
		return key, apperr.ErrNotFound
	}
	err := k.db.WithContext(ctx).Where("org_id = ? AND id = ?", orgID, id).Take(&key).Error
	if store.IsNotFound(err) {
		return key, apperr.ErrNotFound
	}
	if err != nil {
		return key, fmt.Errorf("load api key %s: %w", id, err)
	}
	return key, nil
}

// CodeNotFound is the userErrors code for a key id that names none of the
// organisation's keys (another organisation's look the same).
const CodeNotFound = "NOT_FOUND"

// keyNotFound answers a mutation naming no key of the organisation, as a
// userError on field, as every mutation that takes an id does.
func keyNotFound(field string) error {
	var fe apperr.FieldErrors
	fe.Add(field, CodeNotFound, "No such API key in this organisation.")
	return fe
}

// Revoke stops a key from authenticating. Revoking twice is harmless. An
// id that names none of the organisation's keys is a NOT_FOUND userError
// on id.
func (k *Keys) Revoke(ctx context.Context, orgID, id string) (APIKey, error) {
	if !store.PlausibleID(id) {
		return APIKey{}, keyNotFound("id")
	}
	now := k.clock.Now()
	err := k.db.WithContext(ctx).Model(&APIKey{}).
		Where("org_id = ? AND id = ? AND revoked_at IS NULL", orgID, id).
		Update("revoked_at", now).Error
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke api key %s: %w", id, err)
	}
	k.cache.changed(ctx)
	key, err := k.Get(ctx, orgID, id)
	if errors.Is(err, apperr.ErrNotFound) {
		return APIKey{}, keyNotFound("id")
	}
	return key, err
}

// SetSigningKey stores (or, with "", clears) the Ed25519 public key that
// requests made with this key must be signed with.
func (k *Keys) SetSigningKey(ctx context.Context, orgID, id, publicKeyB64 string) (APIKey, error) {
	if !store.PlausibleID(id) {
		return APIKey{}, apperr.ErrNotFound
	}
	var val any = publicKeyB64
	if publicKeyB64 == "" {
		val = nil
	}
	res := k.db.WithContext(ctx).Model(&APIKey{}).
		Where("org_id = ? AND id = ? AND revoked_at IS NULL", orgID, id).
		Update("signing_public_key", val)
	if res.Error != nil {
		return APIKey{}, fmt.Errorf("set signing key on api key %s: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return APIKey{}, apperr.ErrNotFound
	}
	k.cache.changed(ctx)
	return k.Get(ctx, orgID, id)
}

// Authenticate finds the live key with this secret.
func (k *Keys) Authenticate(ctx context.Context, secret string) (APIKey, *Failure) {
	return k.authenticate(ctx, "secret_hash = ?", HashSecret(secret))
}

// AuthenticateID finds the live key with this id, for signed requests that
// prove possession with a signature instead of the secret.
func (k *Keys) AuthenticateID(ctx context.Context, id string) (APIKey, *Failure) {
	// Key ids are UUIDs. Anything else (a NUL, invalid UTF-8) would reach
	// the database only to fail there and read as an outage.
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		return APIKey{}, &Failure{Reason: ReasonUnknownKey, Message: "API key is not valid"}
	}
	return k.authenticate(ctx, "id = ?", id)
}

func (k *Keys) authenticate(ctx context.Context, where string, arg string) (APIKey, *Failure) {
	lookup := where + arg
	if key, stale, ok := k.cache.get(lookup, k.clock.Now()); ok {
		if stale {
			gen := k.cache.generation()
			k.loads.Refresh(ctx, loadKey(lookup, gen), k.reader(lookup, where, arg, gen)) // nobody waits
		}
		k.touch(ctx, key.ID)
		return key, nil
	}
	key, err := k.load(ctx, lookup, where, arg)
	if store.IsNotFound(err) {
		return key, &Failure{Reason: ReasonUnknownKey, Message: "API key is not valid"}
	}
	if err != nil {
		return key, unavailable("check the API key", err)
	}
	if key.RevokedAt != nil {
		return key, &Failure{Reason: ReasonRevokedKey, Message: "API key has been revoked"}
	}
	k.touch(ctx, key.ID)
	return key, nil
}

// load reads a key from the database and remembers it unless it is revoked.
// Requests with the same credential that miss the cache at once share one
// read: otherwise every request in flight with a busy key would query the
// database together each time its entry expires. A request joins only a
// read that began after the last change of keys this replica knows of (the
// cache's generation), so a key revoked here is refused at once.
func (k *Keys) load(ctx context.Context, lookup, where, arg string) (APIKey, error) {
	gen := k.cache.generation()
	if k.cache == nil {
		return k.reader(lookup, where, arg, gen)(ctx)
	}
	return k.loads.Do(ctx, loadKey(lookup, gen), k.reader(lookup, where, arg, gen))
}

// loadKey names a read of lookup begun at the cache's generation gen in
// loads.
func loadKey(lookup string, gen uint64) string {
	return strconv.FormatUint(gen, 10) + ":" + lookup
}

// reader reads a key from the database, remembering it (as of generation
// gen) unless it is revoked, and forgetting it if it is revoked or gone.
func (k *Keys) reader(lookup, where, arg string, gen uint64) func(context.Context) (APIKey, error) {
	return func(ctx context.Context) (APIKey, error) {
		loaded := k.clock.Now()
		var key APIKey
		err := k.db.WithContext(ctx).Where(where, arg).Take(&key).Error
		switch {
		case err == nil && key.RevokedAt == nil:
			k.cache.put(lookup, key, loaded, gen)
		case err == nil || store.IsNotFound(err):
			k.cache.forget(lookup)
		}
		return key, err
	}
}

// touch records last use, at most once a minute per key, so a busy key does
// not turn every request into a write; in the background, so the request
// that happens to record it does not wait for a durable write (one request
// in sixty of a key used once a second did).
func (k *Keys) touch(ctx context.Context, id string) {
	if !k.touched.PutIfAbsent(id, struct{}{}) {
		return
	}
	now := k.clock.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), touchTimeout)
		defer cancel()
		_ = k.db.WithContext(ctx).Model(&APIKey{}).Where("id = ?", id).Update("last_used_at", now).Error
	}()
}

// touchTimeout bounds a last-use write.
const touchTimeout = 5 * time.Second
