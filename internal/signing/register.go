package signing

import (
	"context"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/auth"
)

// KeyStore stores the public key on an API key (auth.Keys).
type KeyStore interface {
	Get(ctx context.Context, orgID, id string) (auth.APIKey, error)
	SetSigningKey(ctx context.Context, orgID, apiKeyID, publicKeyB64 string) (auth.APIKey, error)
}

// Registrar registers signing keys on API keys.
type Registrar struct{ Keys KeyStore }

// Register makes every later request with the API key need a signature by
// publicKey (base64 or PEM). The key is stored in its normalised base64 form.
// Every bad field is reported: a bad key does not hide an unknown id.
func (r Registrar) Register(ctx context.Context, orgID, apiKeyID, publicKey string) (auth.APIKey, error) {
	k, err := ParsePublicKey(publicKey)
	if err != nil {
		var fe apperr.FieldErrors
		live, lerr := r.Keys.Get(ctx, orgID, apiKeyID)
		switch {
		case lerr == apperr.ErrNotFound || lerr == nil && live.RevokedAt != nil:
			addUnknownKey(&fe)
		case lerr != nil:
			return auth.APIKey{}, lerr
		}
		fe.Add("input.publicKey", "INVALID", err.Error())
		return auth.APIKey{}, fe
	}
	key, err := r.Keys.SetSigningKey(ctx, orgID, apiKeyID, EncodePublicKey(k))
	if err == apperr.ErrNotFound {
		var fe apperr.FieldErrors
		addUnknownKey(&fe)
		return auth.APIKey{}, fe
	}
	return key, err
}

// addUnknownKey reports an id naming none of the organisation's live keys.
func addUnknownKey(fe *apperr.FieldErrors) {
	fe.Add("input.apiKeyId", "NOT_FOUND", "no live API key with this id in your organisation")
}
