package engine

import (
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine/internal/auth"
)

// Ripple's built-in accounts: email + password, EdDSA access tokens published at
// /.well-known/jwks.json, rotating single-use refresh tokens, rate-limited sign-in. The
// implementation lives in engine/internal/auth; these names are its public face.

// AuthConfig configures the auth service (see its fields for defaults).
type AuthConfig = auth.Config

// AuthService serves /api/auth/* and the JWKS, and verifies tokens and admin keys. Pass
// service.Authenticator() as Config.Auth.
type AuthService = auth.Service

// NewAuthService returns an auth service on the pool; call Start before use.
func NewAuthService(pool *pgxpool.Pool, cfg *AuthConfig) (*AuthService, error) {
	return auth.New(pool, cfg)
}

// ParseKeyEncryptionKey decodes RIPPLE_KEY_ENCRYPTION_KEY (base64 of 32 bytes).
func ParseKeyEncryptionKey(s string) ([]byte, error) { return auth.ParseKeyEncryptionKey(s) }

// KeyEncryptionKeyEnv names the environment variable holding the key that encrypts signing
// keys at rest.
const KeyEncryptionKeyEnv = auth.KeyEncryptionKeyEnv
