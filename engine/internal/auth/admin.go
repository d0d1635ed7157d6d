package auth

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
)

const adminKeyPrefix = "ripple_admin_"

// CreateAdminKey returns a new random admin key (256 bits, with a recognisable prefix so secret
// scanners can spot it). Only its SHA-256 is stored: the caller shows it once.
func (s *Service) CreateAdminKey(ctx context.Context) (string, error) {
	key := adminKeyPrefix + randomString(32)
	if err := s.q.AdminKeyInsert(ctx, s.pool, dbsqlc.AdminKeyInsertParams{KeyHash: sha256Sum(key), Now: ts(s.now())}); err != nil {
		return "", err
	}
	s.logger.Info("auth: created admin key")
	return key, nil
}

// VerifyAdminKey returns nil when key is a stored, unrevoked admin key, and an error wrapping
// ErrInvalidAdminKey otherwise. Keys are looked up by hash: with 256-bit random keys, timing
// reveals nothing useful.
func (s *Service) VerifyAdminKey(ctx context.Context, key string) error {
	if !strings.HasPrefix(key, adminKeyPrefix) || len(key) > 200 {
		return ErrInvalidAdminKey
	}
	row, err := s.q.AdminKeyGetByHash(ctx, s.pool, sha256Sum(key))
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrInvalidAdminKey
	}
	if err != nil {
		return err
	}
	if row.RevokedAt.Valid {
		return ErrInvalidAdminKey
	}
	return nil
}

// UserIDAuthenticator adapts a Service to the engine's Authenticator interface, whose
// VerifyAccessToken returns only the user ID: engine.Config{Auth: svc.Authenticator()}.
type UserIDAuthenticator struct{ s *Service }

// Authenticator returns the Service as an engine.Authenticator.
func (s *Service) Authenticator() UserIDAuthenticator { return UserIDAuthenticator{s} }

// VerifyAccessToken returns the user ID of a valid access token (see Service.VerifyAccessToken).
func (a UserIDAuthenticator) VerifyAccessToken(ctx context.Context, token string) (string, error) {
	c, err := a.s.VerifyAccessToken(ctx, token)
	if err != nil {
		return "", err
	}
	return c.UserID, nil
}

// VerifyAccessTokenExpiry is VerifyAccessToken that also returns when the token stops being
// accepted (its exp plus the clock-skew leeway), so the engine can end a socket's identity then.
func (a UserIDAuthenticator) VerifyAccessTokenExpiry(ctx context.Context, token string) (string, time.Time, error) {
	c, err := a.s.VerifyAccessToken(ctx, token)
	if err != nil {
		return "", time.Time{}, err
	}
	return c.UserID, c.ExpiresAt.Add(clockLeeway), nil
}

// VerifyAdminKey is Service.VerifyAdminKey.
func (a UserIDAuthenticator) VerifyAdminKey(ctx context.Context, key string) error {
	return a.s.VerifyAdminKey(ctx, key)
}
