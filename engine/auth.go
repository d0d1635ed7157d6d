package engine

import (
	"net/http"

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

// ClientAddressBehind returns a Config.ClientAddress (and AuthConfig.ClientAddress) for a server
// behind reverse proxies: trusted lists their addresses and CIDR prefixes, comma-separated. A
// request from one of them is keyed on the right-most X-Forwarded-For entry that is not a trusted
// proxy; a request from anywhere else on its TCP peer, so no client can choose its own address.
func ClientAddressBehind(trusted string) (func(*http.Request) string, error) {
	prefixes, err := auth.ParseTrusted(trusted)
	if err != nil {
		return nil, err
	}
	return auth.ForwardedFor(prefixes), nil
}

// CanonicalEmail is the form the auth service stores and looks accounts up by (trimmed,
// lower-cased, a plain addr-spec), or an error saying why raw is not an email address.
func CanonicalEmail(raw string) (string, error) { return auth.CanonicalEmail(raw) }

// ConvexPasswordHash turns a Convex Auth Password provider secret (lucia's Scrypt,
// "<salt>:<key>" in hex) into a password hash ripple_auth_credentials accepts: sign-in
// verifies it and replaces it with argon2id. It refuses a secret of another shape.
func ConvexPasswordHash(secret string) (string, error) { return auth.ConvexPasswordHash(secret) }
