package auth

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/scrypt"
)

// Hashes made by Node's own scrypt (node:crypto, an implementation independent of
// golang.org/x/crypto) with lucia's formula:
//
//	crypto.scryptSync(Buffer.from(pw.normalize("NFKC")), Buffer.from(salt), 64, {N: 16384, r: 16, p: 1})
//
// with salt "0123456789abcdef0123456789abcdef" (lucia's salt is the hex text, used as UTF-8).
const (
	nodeSalt     = "0123456789abcdef0123456789abcdef"
	nodeVector1  = nodeSalt + ":e1034727d858e2fca8a705fe561781100520e78064f8d2bfa492937c58df02eb15d40233f809f179c7fb9863b8eb9dc5a8d2dc196c0b9733c05fa426f224856e"
	nodeVector1P = "correct horse battery staple"
	// "\ufb01sh\u00e9 caf\u0065\u0301 pass": a ligature and a decomposed accent, which NFKC folds.
	nodeVector2 = nodeSalt + ":88124bb73f6e3fb04b1ef938613f4cd3cb795dbc36153d183b3be541ad0d0fce4a401df79a41baa3d9045cdd69e060104e792ede439c77bdd67d93e87324a632"
)

// Hashes made by the lucia npm package itself (lucia 3.2.2, `new Scrypt().hash(password)`, the
// class Convex Auth's Password provider stores), with its own random salts.
const (
	luciaPackageHash1 = "2fc282ce8da5760e82522a951402f209:c7c0953418ecf4cc64733fe615975e6ee4af270ccdb66dc6298a6ab4b45a0b5e0831113fcda4229d542e7c0acdef6c9a4fb1e00fa8c28c7858f8e1b9972a6b31"
	luciaPackagePw1   = "correct horse battery staple"
	luciaPackageHash2 = "06037667c91627c0e20ce44285335b38:a8edbf6409fcc88f66eae5910b9dda7b18055a1f6a732a28a4554e6acd441faf4fe7cb93ee2637613c2a3efa709c942b9c91e990d8d3e33df6c21c9f159ff1ca"
	luciaPackagePw2   = "\u00dcn\u00efc\u00f6d\u00e9 p\u00e4ssw\u00f6rd \ufb01" // NFKC folds the ligature
)

// luciaHash computes lucia's Scrypt hash from the formula, as Convex Auth stores it.
func luciaHash(t testing.TB, password, salt string) string {
	t.Helper()
	key, err := scrypt.Key([]byte(password), []byte(salt), 16384, 16, 1, 64)
	require.NoError(t, err)
	return salt + ":" + hex.EncodeToString(key)
}

func TestConvexScryptVectors(t *testing.T) {
	t.Parallel()
	// golang.org/x/crypto/scrypt against RFC 7914's published vector (N=16384, r=8, p=1).
	key, err := scrypt.Key([]byte("pleaseletmein"), []byte("SodiumChloride"), 16384, 8, 1, 64)
	require.NoError(t, err)
	require.Equal(t, "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"+
		"d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887", hex.EncodeToString(key))

	// The formula computed here gives Node's hash.
	require.Equal(t, nodeVector1, luciaHash(t, nodeVector1P, nodeSalt))

	for _, tt := range []struct {
		hash, password string
		ok             bool
	}{
		{nodeVector1, nodeVector1P, true},
		{nodeVector1, nodeVector1P + " ", false},
		{nodeVector1, "Correct horse battery staple", false},
		{nodeVector2, "\ufb01sh\u00e9 caf\u0065\u0301 pass", true},
		{nodeVector2, "fish\u00e9 caf\u00e9 pass", true}, // the NFKC form of the same password
		{nodeVector2, "fishe caf\u00e9 pass", false},
		{luciaPackageHash1, luciaPackagePw1, true},
		{luciaPackageHash1, luciaPackagePw1 + "!", false},
		{luciaPackageHash2, luciaPackagePw2, true},
		{luciaPackageHash2, "\u00dcn\u00efc\u00f6d\u00e9 p\u00e4ssw\u00f6rd fi", true}, // its NFKC form
	} {
		stored, err := ConvexPasswordHash(tt.hash)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(stored, "$convex-scrypt$"))
		ok, rehash, err := checkPassword(tt.password, stored)
		require.NoError(t, err)
		require.Equal(t, tt.ok, ok, "%q", tt.password)
		require.True(t, rehash, "a Convex hash is always replaced by argon2id")
	}

	for _, bad := range []string{
		"",
		nodeSalt,                               // no key
		nodeSalt + ":abcd",                     // short key
		"zz" + nodeVector1[2:],                 // salt not hex
		"abc:" + nodeVector1[len(nodeSalt)+1:], // salt too short
		nodeVector1 + ":00",                    // three parts
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
	} {
		_, err := ConvexPasswordHash(bad)
		require.Error(t, err, bad)
	}
}

// A user whose credential is a Convex hash signs in with the Convex password over HTTP; the
// hash becomes argon2id in the same request and keeps working. A wrong password gets the
// same error as for any account.
func TestConvexScryptSignIn(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	const password = "convex-era password"
	stored, err := ConvexPasswordHash(luciaHash(t, password, "fedcba9876543210fedcba9876543210"))
	require.NoError(t, err)
	var uid int64
	require.NoError(t, h.db.Pool.QueryRow(h.ctx, `INSERT INTO users (name, email) VALUES ('Cleo', 'cleo@example.com') RETURNING id`).Scan(&uid))
	_, err = h.db.Pool.Exec(h.ctx, `INSERT INTO ripple_auth_credentials (user_id, password_hash, created_at, updated_at)
		VALUES ($1, $2, now(), now())`, uid, stored)
	require.NoError(t, err)
	hash := func() string {
		var s string
		require.NoError(t, h.db.Pool.QueryRow(h.ctx, `SELECT password_hash FROM ripple_auth_credentials WHERE user_id = $1`, uid).Scan(&s))
		return s
	}

	wrong := requireAPIError(t, h.signIn("cleo@example.com", "not the password"), http.StatusUnauthorized, "UNAUTHENTICATED")
	unknown := requireAPIError(t, h.signIn("nobody@example.com", "not the password"), http.StatusUnauthorized, "UNAUTHENTICATED")
	require.Equal(t, unknown["message"], wrong["message"])
	require.Equal(t, stored, hash(), "a failed sign-in leaves the hash alone")

	r := h.signIn("Cleo@Example.com", password)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(t, strconv.FormatInt(uid, 10), r.json(t)["user"].(map[string]any)["_id"])
	require.True(t, strings.HasPrefix(hash(), "$argon2id$v=19$m=19456,t=2,p=1$"), "replaced by argon2id: %s", hash())

	r = h.signIn("cleo@example.com", password)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	requireAPIError(t, h.signIn("cleo@example.com", "not the password"), http.StatusUnauthorized, "UNAUTHENTICATED")

	// The database refuses anything that is neither kind of hash.
	_, err = h.db.Pool.Exec(h.ctx, `UPDATE ripple_auth_credentials SET password_hash = 'plain' WHERE user_id = $1`, uid)
	require.Error(t, err)
}
