package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
)

// tokenPair is what one sign-in or refresh issues. It is also what is sealed for the reuse grace
// window, so a retry gets byte-identical tokens.
type tokenPair struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
	ExpiresAt    int64  `json:"expiresAt"` // access token expiry, ms since the epoch
}

type userJSON struct {
	ID    string `json:"_id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

type authResponse struct {
	tokenPair
	User userJSON `json:"user"`
}

func userResponse(id int64, email, name string) userJSON {
	return userJSON{ID: strconv.FormatInt(id, 10), Email: email, Name: name}
}

// refreshTokenBytes is the entropy of a refresh token (base64url, 43 characters).
const refreshTokenBytes = 32

// CanonicalEmail is the form accounts are stored and looked up by: trimmed, lower-cased, a
// plain addr-spec. The error's message says what is wrong.
func CanonicalEmail(raw string) (string, error) {
	email, err := normalizeEmail(raw)
	if err != nil {
		var api *apiError
		if errors.As(err, &api) {
			return "", errors.New(api.Message)
		}
		return "", err
	}
	return email, nil
}

// normalizeEmail trims and lower-cases an address and checks it is a plain addr-spec.
func normalizeEmail(raw string) (string, error) {
	email := strings.ToLower(strings.TrimSpace(raw))
	if email == "" {
		return "", invalidArgument("email is required")
	}
	if len(email) > 254 {
		return "", invalidArgument("email is too long")
	}
	addr, err := mail.ParseAddress(email)
	local, domain, ok := strings.Cut(email, "@")
	if err != nil || addr.Address != email || addr.Name != "" || !ok || local == "" ||
		!strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.ContainsAny(email, " \t\r\n<>\"(),;:[]\\") {
		return "", invalidArgument("email is not a valid email address")
	}
	return email, nil
}

// plainASCII reports whether s is printable ASCII only.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// hiddenRune is a character that cannot be seen but changes what a name shows: controls
// (NUL among them, which Postgres refuses) and the bidirectional overrides and isolates.
func hiddenRune(r rune) bool {
	return unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

func checkPasswordLength(password string) error {
	if len(password) < minPasswordBytes {
		return invalidArgument(fmt.Sprintf("password must be at least %d bytes", minPasswordBytes))
	}
	if len(password) > maxPasswordBytes {
		return invalidArgument(fmt.Sprintf("password must be at most %d bytes", maxPasswordBytes))
	}
	return nil
}

type signUpRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

func (s *Service) signUp(ctx context.Context, addr string, req signUpRequest) (*authResponse, error) {
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return nil, err
	}
	if !plainASCII(email) {
		// A zero-width space, a fullwidth letter, a Cyrillic "е" or another normal form would
		// make a new account that reads like an existing one.
		return nil, invalidArgument("email must be plain ASCII letters, digits and punctuation")
	}
	if err := checkPasswordLength(req.Password); err != nil {
		return nil, err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		return nil, invalidArgument("name is required")
	}
	if utf8.RuneCountInString(name) > 200 || !utf8.ValidString(name) {
		return nil, invalidArgument("name must be at most 200 characters of valid UTF-8")
	}
	if strings.IndexFunc(name, hiddenRune) >= 0 {
		return nil, invalidArgument("name must not contain control or text-direction characters")
	}
	if err := s.rateHit(ctx, s.limitSignUpAddress(), addr); err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(ctx, req.Password)
	if err != nil {
		return nil, err
	}

	var resp *authResponse
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		user, err := s.q.AuthUserInsert(ctx, tx, dbsqlc.AuthUserInsertParams{Name: name, Email: email})
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" {
				return &apiError{status: 409, Code: "CONFLICT", Message: "an account with this email already exists"}
			}
			return err
		}
		if err := s.q.AuthCredentialInsert(ctx, tx, dbsqlc.AuthCredentialInsertParams{UserID: user.ID, PasswordHash: hash, Now: ts(s.now())}); err != nil {
			return err
		}
		pair, sessionID, err := s.newSession(ctx, tx, user.ID)
		if err != nil {
			return err
		}
		resp = &authResponse{tokenPair: pair, User: userResponse(user.ID, user.Email, user.Name)}
		s.logger.Info("auth: signed up", "user_id", user.ID, "session_id", sessionID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

type signInRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

var errBadCredentials = &apiError{status: 401, Code: "UNAUTHENTICATED", Message: "invalid email or password"}

func (s *Service) signIn(ctx context.Context, addr string, req signInRequest) (*authResponse, error) {
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return nil, err
	}
	if req.Password == "" {
		return nil, invalidArgument("password is required")
	}
	if len(req.Password) > maxPasswordBytes {
		return nil, invalidArgument(fmt.Sprintf("password must be at most %d bytes", maxPasswordBytes))
	}
	// Every attempt counts as a failure until it succeeds, so attempts sent at once cannot all
	// be verified before any of them is counted.
	releaseAddr, err := s.rateReserve(ctx, s.limitSignInAddress(), addr)
	if err != nil {
		return nil, err
	}
	releasePair, err := s.rateReserve(ctx, s.limitSignInAccountAddress(), email+"\x00"+addr)
	if err != nil {
		releaseAddr(ctx)
		return nil, err
	}
	releaseAccount, err := s.rateReserve(ctx, s.limitSignInAccount(), email)
	if err != nil {
		releaseAddr(ctx)
		releasePair(ctx)
		return nil, err
	}

	// Known and unknown emails do the same work: one lookup, one argon2id computation (against
	// a dummy hash with the current parameters when the email is unknown), the same counters.
	cred, err := s.q.AuthCredentialGetByEmail(ctx, s.pool, email)
	known := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	encoded := s.dummyHash
	if known {
		encoded = cred.PasswordHash
	}
	ok, rehash, err := s.checkPassword(ctx, req.Password, encoded)
	if err != nil {
		return nil, fmt.Errorf("checking password: %w", err)
	}
	if !ok || !known {
		s.logger.Info("auth: sign-in failed")
		return nil, errBadCredentials
	}
	releaseAddr(ctx)
	releasePair(ctx)
	releaseAccount(ctx)

	if rehash {
		if h, err := s.hashPassword(ctx, req.Password); err == nil {
			err = s.q.AuthCredentialUpdateHash(ctx, s.pool, dbsqlc.AuthCredentialUpdateHashParams{PasswordHash: h, Now: ts(s.now()), UserID: cred.ID})
			if err != nil {
				s.logger.Warn("auth: upgrading password hash failed", "user_id", cred.ID, "error", err)
			}
		}
	}

	var resp *authResponse
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		pair, sessionID, err := s.newSession(ctx, tx, cred.ID)
		if err != nil {
			return err
		}
		resp = &authResponse{tokenPair: pair, User: userResponse(cred.ID, cred.Email, cred.Name)}
		s.logger.Info("auth: signed in", "user_id", cred.ID, "session_id", sessionID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// newSession starts a refresh-token family and issues its first pair.
func (s *Service) newSession(ctx context.Context, tx pgx.Tx, userID int64) (tokenPair, int64, error) {
	sessionID, err := s.q.AuthSessionInsert(ctx, tx, dbsqlc.AuthSessionInsertParams{UserID: userID, Now: ts(s.now())})
	if err != nil {
		return tokenPair{}, 0, err
	}
	pair, _, err := s.issuePair(ctx, tx, userID, sessionID)
	return pair, sessionID, err
}

// issuePair stores a new refresh token (hashed) in the session and signs an access token.
func (s *Service) issuePair(ctx context.Context, tx pgx.Tx, userID, sessionID int64) (tokenPair, []byte, error) {
	refresh := randomString(refreshTokenBytes)
	hash := sha256Sum(refresh)
	if err := s.q.RefreshTokenInsert(ctx, tx, dbsqlc.RefreshTokenInsertParams{SessionID: sessionID, TokenHash: hash, Now: ts(s.now())}); err != nil {
		return tokenPair{}, nil, err
	}
	access, exp, err := s.issueAccessToken(ctx, userID, sessionID)
	if err != nil {
		return tokenPair{}, nil, err
	}
	return tokenPair{AccessToken: access, RefreshToken: refresh, ExpiresAt: exp.UnixMilli()}, hash, nil
}

var (
	errBadRefresh     = &apiError{status: 401, Code: "UNAUTHENTICATED", Message: "invalid refresh token"}
	errSessionEnded   = &apiError{status: 401, Code: "UNAUTHENTICATED", Message: "session has ended; sign in again"}
	errSessionExpired = &apiError{status: 401, Code: "UNAUTHENTICATED", Message: "session expired; sign in again"}
)

func checkRefreshTokenShape(token string) error {
	if token == "" {
		return invalidArgument("refreshToken is required")
	}
	if len(token) > 256 {
		return errBadRefresh
	}
	return nil
}

// refresh spends a refresh token and issues the next pair of its family. A spent token
// presented again within RefreshReuseGrace returns the same successor pair; later, it revokes
// the family. Failures that change state (revocation) are committed before being returned.
func (s *Service) refresh(ctx context.Context, token string) (*authResponse, error) {
	if err := checkRefreshTokenShape(token); err != nil {
		return nil, err
	}
	hash := sha256Sum(token)
	var resp *authResponse
	var fail error // an error to return after committing
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		now := s.now()
		row, err := s.q.RefreshTokenGetByHashForUpdate(ctx, tx, hash)
		if errors.Is(err, pgx.ErrNoRows) {
			fail = errBadRefresh
			return nil
		}
		if err != nil {
			return err
		}
		user := userResponse(row.UserID, row.Email, row.Name)
		switch {
		case row.RevokedAt.Valid:
			fail = errSessionEnded
			return nil

		case row.SpentAt.Valid:
			if row.SuccessorSealed != nil && !now.After(row.SpentAt.Time.Add(s.cfg.RefreshReuseGrace)) {
				plain, err := open(s.pairSealKey, row.SuccessorSealed, hash)
				if err != nil {
					return fmt.Errorf("opening sealed successor pair: %w", err)
				}
				var pair tokenPair
				if err := json.Unmarshal(plain, &pair); err != nil {
					return err
				}
				resp = &authResponse{tokenPair: pair, User: user}
				s.logger.Info("auth: refresh retried within grace window", "user_id", row.UserID, "session_id", row.SessionID)
				return nil
			}
			if err := s.revokeSession(ctx, tx, row.SessionID, "refresh_token_reuse"); err != nil {
				return err
			}
			s.logger.Warn("auth: spent refresh token reused; session revoked", "user_id", row.UserID, "session_id", row.SessionID)
			fail = errSessionEnded
			return nil

		case now.Sub(row.LastUsedAt.Time) > s.cfg.SessionIdleTTL:
			if err := s.revokeSession(ctx, tx, row.SessionID, "idle"); err != nil {
				return err
			}
			fail = errSessionExpired
			return nil
		}

		pair, _, err := s.issuePair(ctx, tx, row.UserID, row.SessionID)
		if err != nil {
			return err
		}
		plain, err := json.Marshal(pair)
		if err != nil {
			return err
		}
		sealed, err := seal(s.pairSealKey, plain, hash)
		if err != nil {
			return err
		}
		if err := s.q.RefreshTokenSpend(ctx, tx, dbsqlc.RefreshTokenSpendParams{Now: ts(now), SuccessorSealed: sealed, ID: row.ID}); err != nil {
			return err
		}
		if err := s.q.AuthSessionTouch(ctx, tx, dbsqlc.AuthSessionTouchParams{Now: ts(now), ID: row.SessionID}); err != nil {
			return err
		}
		resp = &authResponse{tokenPair: pair, User: user}
		s.logger.Info("auth: refreshed", "user_id", row.UserID, "session_id", row.SessionID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if fail != nil {
		return nil, fail
	}
	return resp, nil
}

func (s *Service) revokeSession(ctx context.Context, tx pgx.Tx, sessionID int64, reason string) error {
	if _, err := s.q.AuthSessionRevoke(ctx, tx, dbsqlc.AuthSessionRevokeParams{Now: ts(s.now()), Reason: &reason, ID: sessionID}); err != nil {
		return err
	}
	return s.q.RefreshTokenClearSealedBySession(ctx, tx, sessionID)
}

// signOut revokes the family the refresh token belongs to. Unknown tokens are not an error.
func (s *Service) signOut(ctx context.Context, token string) error {
	if err := checkRefreshTokenShape(token); err != nil {
		if errors.Is(err, errBadRefresh) {
			return nil
		}
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		row, err := s.q.RefreshTokenGetByHashForUpdate(ctx, tx, sha256Sum(token))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.revokeSession(ctx, tx, row.SessionID, "signout"); err != nil {
			return err
		}
		s.logger.Info("auth: signed out", "user_id", row.UserID, "session_id", row.SessionID)
		return nil
	})
}
