package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters for new hashes: OWASP's minimum recommendation (19 MiB, 2 passes, 1 lane).
// Stored hashes carry their own parameters, so raising these later only affects new hashes
// (and rehashes on sign-in).
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonSaltLen   = 16
	argonKeyLen    = 32

	minPasswordBytes = 8
	maxPasswordBytes = 128
)

var b64 = base64.RawStdEncoding

type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
}

// hashPassword returns a PHC string: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func hashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemoryKiB, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// parsePHC parses an argon2id PHC string, refusing parameters outside sane bounds.
func parsePHC(encoded string) (p argonParams, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id PHC string")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("unsupported argon2 version %q", parts[2])
	}
	var m, t, par uint64
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, nil, nil, errors.New("malformed argon2id parameters")
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, nil, nil, errors.New("malformed argon2id parameters")
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			par = n
		default:
			return p, nil, nil, fmt.Errorf("unknown argon2id parameter %q", k)
		}
	}
	if m < 8 || m > 4*1024*1024 || t < 1 || t > 100 || par < 1 || par > 255 {
		return p, nil, nil, errors.New("argon2id parameters out of range")
	}
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, errors.New("malformed argon2id salt")
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errors.New("malformed argon2id hash")
	}
	return argonParams{memory: uint32(m), time: uint32(t), threads: uint8(par)}, salt, key, nil
}

// checkPassword reports whether password matches the PHC string, in constant time with respect
// to the hash, and whether the hash should be upgraded to the current parameters. A Convex
// scrypt hash (ConvexScryptPrefix) is verified too, and always asks to be replaced by argon2id.
func checkPassword(password, encoded string) (ok, rehash bool, err error) {
	if strings.HasPrefix(encoded, ConvexScryptPrefix) {
		ok, err = checkConvexScrypt(password, encoded)
		return ok, true, err
	}
	p, salt, key, err := parsePHC(encoded)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(key)))
	ok = subtle.ConstantTimeCompare(got, key) == 1
	rehash = p.memory < argonMemoryKiB || p.time < argonTime || len(salt) < argonSaltLen || len(key) < argonKeyLen
	return ok, rehash, nil
}

// acquireHash bounds how many password hash computations (argon2id 19 MiB, Convex scrypt 32 MiB)
// run at once.
func (s *Service) acquireHash(ctx context.Context) (release func(), err error) {
	select {
	case s.hashSem <- struct{}{}:
		return func() { <-s.hashSem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Service) hashPassword(ctx context.Context, password string) (string, error) {
	release, err := s.acquireHash(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return hashPassword(password)
}

func (s *Service) checkPassword(ctx context.Context, password, encoded string) (ok, rehash bool, err error) {
	release, err := s.acquireHash(ctx)
	if err != nil {
		return false, false, err
	}
	defer release()
	return checkPassword(password, encoded)
}
