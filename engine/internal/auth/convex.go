package auth

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"

	"golang.org/x/crypto/scrypt"
	"golang.org/x/text/unicode/norm"
)

// ConvexScryptPrefix marks a password hash imported from Convex Auth (`ripple import --convex`).
// Convex Auth's Password provider stores lucia's Scrypt hash, "<salt>:<key>" in lowercase hex,
// where key = scrypt(NFKC(password), salt, N=16384, r=16, p=1, dkLen=64) and salt is the UTF-8
// bytes of the hex string itself (not the bytes it encodes). Ripple stores it as
// "$convex-scrypt$<salt>:<key>", verifies it at sign-in, and on the first successful sign-in
// replaces it with an argon2id hash of the same password.
const ConvexScryptPrefix = "$convex-scrypt$"

// lucia's Scrypt parameters (fixed by lucia; a hash does not carry them).
const (
	convexScryptN      = 16384
	convexScryptR      = 16
	convexScryptP      = 1
	convexScryptKeyLen = 64
)

// ConvexPasswordHash turns a Convex Auth password secret ("<salt>:<key>") into what Ripple
// stores, checking its shape.
func ConvexPasswordHash(secret string) (string, error) {
	if _, _, err := parseConvexScrypt(ConvexScryptPrefix + secret); err != nil {
		return "", err
	}
	return ConvexScryptPrefix + secret, nil
}

func parseConvexScrypt(encoded string) (salt, key []byte, err error) {
	rest, ok := strings.CutPrefix(encoded, ConvexScryptPrefix)
	if !ok {
		return nil, nil, errors.New("not a Convex scrypt hash")
	}
	s, k, ok := strings.Cut(rest, ":")
	if !ok || strings.Contains(k, ":") {
		return nil, nil, errors.New(`a Convex scrypt hash is "<salt>:<key>"`)
	}
	// lucia's salt is 16 random bytes in hex; only its text is used, so accept any hex of a
	// sane length rather than insisting on 32 characters.
	if len(s) < 16 || len(s) > 128 {
		return nil, nil, errors.New("a Convex scrypt hash's salt must be 16 to 128 hex characters")
	}
	if _, err := hex.DecodeString(s); err != nil {
		return nil, nil, errors.New("a Convex scrypt hash's salt is not hex")
	}
	key, err = hex.DecodeString(k)
	if err != nil || len(key) != convexScryptKeyLen {
		return nil, nil, errors.New("a Convex scrypt hash's key must be 64 bytes in hex")
	}
	return []byte(s), key, nil
}

// convexScryptKey is lucia's key derivation.
func convexScryptKey(password string, salt []byte) ([]byte, error) {
	return scrypt.Key([]byte(norm.NFKC.String(password)), salt, convexScryptN, convexScryptR, convexScryptP, convexScryptKeyLen)
}

// checkConvexScrypt reports whether password matches a "$convex-scrypt$" hash, comparing in
// constant time.
func checkConvexScrypt(password, encoded string) (bool, error) {
	salt, key, err := parseConvexScrypt(encoded)
	if err != nil {
		return false, err
	}
	got, err := convexScryptKey(password, salt)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}
