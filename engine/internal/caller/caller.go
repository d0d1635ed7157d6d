// Package caller holds the identity a function runs as. Every engine service passes it along
// (the session that verified it, the reactor that groups queries by it, the runner that hands
// it to the function), so it lives below all of them; the engine package re-exports it.
package caller

import "errors"

// Identity is the verified caller of a function. The zero value is an anonymous caller.
type Identity struct {
	// UserID is the signed-in user's ID (the access token's subject); empty when anonymous.
	UserID string
	// Admin is set for calls made with an admin key (which may also act as a user).
	Admin bool
}

// Anonymous reports whether no user is signed in.
func (i Identity) Anonymous() bool { return i.UserID == "" }

// Key names the identity in maps: identical queries of one identity run once, and the mutation
// log and rate limits are kept per identity.
func (i Identity) Key() string {
	if i.Admin {
		return "admin:" + i.UserID
	}
	return "user:" + i.UserID
}

// ErrAuth is wrapped by every error for refused credentials: a bad token or admin key, or an
// Authorization header of an unknown scheme.
var ErrAuth = errors.New("authentication failed")
