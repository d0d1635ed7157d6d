package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/testdb"
)

// Behind a reverse proxy named in RIPPLE_TRUSTED_PROXIES, sign-in throttling keys on the address
// the proxy forwards: a stranger's guesses from one address do not throttle the student signing
// in from another, though both reach the server through the same proxy. Without the setting the
// header is ignored (any client could write it).
func TestTrustedProxiesForwardClientAddresses(t *testing.T) {
	t.Parallel()
	signIn := func(base, from, password string) int {
		body, err := json.Marshal(map[string]string{"email": "leo@school.test", "password": password})
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, base+"/api/auth/signin", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", from)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, behindProxy := range []bool{true, false} {
		db := testdb.NewSchema(t)
		vars := map[string]string{"DATABASE_URL": db.URL}
		if behindProxy {
			vars["RIPPLE_TRUSTED_PROXIES"] = "127.0.0.1, ::1"
		}
		base := startServe(t, vars, db.Schema, "").base()
		status, out := post(t, base+"/api/auth/signup", "", map[string]any{"email": "leo@school.test", "password": "correct horse battery", "name": "Leo"})
		require.Equal(t, http.StatusOK, status, "%v", out)
		for range 10 { // the per-(email, address) limit's default
			require.Equal(t, http.StatusUnauthorized, signIn(base, "203.0.113.9", "wrong password"))
		}
		require.Equal(t, http.StatusTooManyRequests, signIn(base, "203.0.113.9", "correct horse battery"), "behind proxy: %v", behindProxy)
		want := http.StatusOK // the student's own address is not throttled
		if !behindProxy {
			want = http.StatusTooManyRequests // the header is ignored: everyone is 127.0.0.1
		}
		require.Equal(t, want, signIn(base, "198.51.100.7", "correct horse battery"), "behind proxy: %v", behindProxy)
	}
}
