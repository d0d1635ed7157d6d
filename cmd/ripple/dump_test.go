package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/testdb"
)

func TestExportImportCommands(t *testing.T) {
	t.Parallel()
	src := testdb.NewSchema(t)
	seedReembed(t, src, 5, 2, localProvider(t, 1536), nil)
	dst := testdb.NewSchema(t)
	vars := map[string]string{"DATABASE_URL": src.URL}
	dirA := filepath.Join(t.TempDir(), "a")

	res := runBinary(t, vars, "export", "--schema", src.Schema, dirA)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "exported")
	assert.Contains(t, res.stdout, "to "+dirA)
	// Not a terminal: plain progress lines.
	assert.Contains(t, res.stderr, "exporting messages: 5 rows done in ")

	// Flags may follow the directory.
	res = runBinary(t, vars, "import", dirA, "--schema", dst.Schema)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "imported")
	assert.Contains(t, res.stderr, "verifying checksums")

	dirB := filepath.Join(t.TempDir(), "b")
	res = runBinary(t, vars, "export", "--quiet", "--schema", dst.Schema, dirB)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Empty(t, res.stderr, "--quiet")
	requireSameFiles(t, dirA, dirB)

	// The target holds data now: refused without --replace, accepted with it.
	res = runBinary(t, vars, "import", "--schema", dst.Schema, dirA)
	require.Equal(t, 1, res.code)
	assert.NotContains(t, res.stderr, "verifying", "refused before reading the files")
	assert.Contains(t, requireOneErrorLine(t, res.stderr), "--replace")
	res = runBinary(t, vars, "import", "--quiet", "--replace", "--schema", dst.Schema, dirA)
	require.Equal(t, 0, res.code, res.stderr)

	// A schema that does not exist is not quietly replaced by public.
	res = runBinary(t, vars, "export", "--schema", "no_such_schema", filepath.Join(t.TempDir(), "c"))
	require.Equal(t, 1, res.code)
	assert.Contains(t, requireOneErrorLine(t, res.stderr), "schema no_such_schema does not exist")

	for _, args := range [][]string{{"export"}, {"import"}, {"import", dirA, "extra"}, {"export", dirA, "--bogus"}} {
		res = runBinary(t, vars, args...)
		assert.Equal(t, 2, res.code, "%v", args)
		requireOneErrorLine(t, res.stderr)
	}
}

// requireSameFiles checks that two directories hold the same files, byte for byte.
func requireSameFiles(t *testing.T, a, b string) {
	t.Helper()
	entries, err := os.ReadDir(a)
	require.NoError(t, err)
	other, err := os.ReadDir(b)
	require.NoError(t, err)
	require.Len(t, other, len(entries))
	for _, e := range entries {
		x, err := os.ReadFile(filepath.Join(a, e.Name()))
		require.NoError(t, err)
		y, err := os.ReadFile(filepath.Join(b, e.Name()))
		require.NoError(t, err)
		require.Equal(t, string(x), string(y), e.Name())
	}
}

// startServe runs `ripple serve` (with any further flags) on a free loopback port until the
// test ends and returns its base URL once /readyz answers.
func startServe(t *testing.T, vars map[string]string, schemaName string, flags ...string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := newCmd(t, vars, append([]string{"serve", "--addr", addr, "--schema", schemaName}, flags...)...)
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("ripple serve --schema %s:\n%s", schemaName, stderr.String())
		}
	})
	waitForOK(t, &http.Client{Timeout: 5 * time.Second}, "http://"+addr+"/readyz")
	return "http://" + addr
}

// post sends a JSON body and decodes the JSON reply.
func post(t *testing.T, url, bearer string, body any) (int, map[string]any) {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(reply, &out), "%s: %s", url, reply)
	return resp.StatusCode, out
}

// me is users:me for the holder of an access token.
func me(t *testing.T, base, accessToken string) any {
	t.Helper()
	status, out := post(t, base+"/api/query", accessToken, map[string]any{"path": "users:me", "format": "json", "args": []any{map[string]any{}}})
	require.Equal(t, http.StatusOK, status, "%v", out)
	return out["value"]
}

// A restore is only useful if the people using the chat can go on: tokens issued before the
// export verify after it (signing keys), refresh tokens still rotate (sessions), passwords
// still sign in (credentials), on a new database served with the same key-encryption key.
func TestRestoreKeepsAccountsSignedIn(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	src, dst := testdb.NewSchema(t), testdb.NewSchema(t)
	vars := map[string]string{"DATABASE_URL": src.URL, "RIPPLE_KEY_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(key)}

	base := startServe(t, vars, src.Schema)
	status, tokens := post(t, base+"/api/auth/signup", "", map[string]any{"email": "ada@school.test", "password": "correct horse battery", "name": "Ada"})
	require.Equal(t, http.StatusOK, status, "%v", tokens)
	access, refresh := tokens["accessToken"].(string), tokens["refreshToken"].(string)
	before := me(t, base, access)
	require.NotNil(t, before)

	dir := filepath.Join(t.TempDir(), "export")
	res := runBinary(t, vars, "export", "--quiet", "--schema", src.Schema, dir)
	require.Equal(t, 0, res.code, res.stderr)
	res = runBinary(t, vars, "import", "--quiet", "--schema", dst.Schema, dir)
	require.Equal(t, 0, res.code, res.stderr)

	restored := startServe(t, vars, dst.Schema)
	require.Equal(t, before, me(t, restored, access), "a token issued before the export")
	status, out := post(t, restored+"/api/auth/refresh", "", map[string]any{"refreshToken": refresh})
	require.Equal(t, http.StatusOK, status, "%v", out)
	require.Equal(t, before, me(t, restored, out["accessToken"].(string)))
	status, out = post(t, restored+"/api/auth/signin", "", map[string]any{"email": "ada@school.test", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, status, "%v", out)
}
