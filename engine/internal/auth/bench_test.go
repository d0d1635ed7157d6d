package auth

import (
	"testing"

	"golang.org/x/crypto/argon2"
)

func argon2IDKey(password, salt string, t, m uint32) []byte {
	return argon2.IDKey([]byte(password), []byte(salt), t, m, 1, 32)
}

// BenchmarkSignInUnknownVsKnown compares a failed sign-in for an existing account (wrong
// password) with one for an unknown email: the two should take the same time.
func BenchmarkSignInUnknownVsKnown(b *testing.B) {
	h := newHarness(b, func(c *Config) {
		c.SignInFailuresPerAccount = 1 << 30
		c.SignInFailuresPerAddress = 1 << 30
	})
	h.signUp("known@example.com", pw, "Known")
	for _, bc := range []struct{ name, email string }{
		{"known", "known@example.com"},
		{"unknown", "unknown@example.com"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				_, err := h.svc.signIn(h.ctx, "192.0.2.1", signInRequest{Email: bc.email, Password: "wrong password"})
				if err != errBadCredentials {
					b.Fatalf("got %v", err)
				}
			}
		})
	}
}
