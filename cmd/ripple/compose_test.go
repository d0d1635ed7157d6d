package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/ripplehq/ripple/internal/testdb"
)

// composeFile is the part of docker-compose.yml this test reads.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       string            `yaml:"build"`
		Entrypoint  []string          `yaml:"entrypoint"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// Docker is not available where the tests run, so `docker compose config` cannot check the file.
// This test parses it, checks what the README promises of it, and runs its two shell scripts
// (the key generator and the ripple service's start) with sh against a temporary directory
// standing in for the kek volume.
func TestDockerCompose(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(raw, &c))

	assert.NotRegexp(t, regexp.MustCompile(`[A-Za-z0-9+/]{43}=`), string(raw), "no fixed key-encryption key in the file")
	ripple, keygen := c.Services["ripple"], c.Services["keygen"]
	assert.Equal(t, ".", ripple.Build, "ripple runs the image the Dockerfile builds")
	assert.Equal(t, "service_healthy", ripple.DependsOn["db"].Condition)
	assert.Equal(t, "service_completed_successfully", ripple.DependsOn["keygen"].Condition)
	assert.Contains(t, strings.Join(ripple.Healthcheck.Test, " "), "http://127.0.0.1:3210/readyz")
	assert.Contains(t, ripple.Volumes, "kek:/keys:ro")
	assert.Contains(t, keygen.Volumes, "kek:/keys")
	assert.Contains(t, c.Volumes, "kek")
	assert.Equal(t, "${RIPPLE_KEY_ENCRYPTION_KEY:-}", ripple.Environment["RIPPLE_KEY_ENCRYPTION_KEY"], "a key of one's own may be passed")
	require.Equal(t, []string{"/bin/sh", "-c"}, keygen.Entrypoint)
	require.Equal(t, []string{"/bin/sh", "-c"}, ripple.Entrypoint)
	require.Len(t, keygen.Command, 1)
	require.Len(t, ripple.Command, 1)

	// The scripts as the containers would run them: compose turns $$ into $.
	keys := t.TempDir()
	script := func(s string) string {
		s = strings.ReplaceAll(s, "$$", "$")
		return strings.ReplaceAll(s, "/keys", keys)
	}
	gen := script(keygen.Command[0])
	if os.Geteuid() != 0 {
		gen = strings.ReplaceAll(gen, "chown 10001", "true") // only root may hand the file over
	}
	runSh := func(s string, env ...string) string {
		t.Helper()
		cmd := exec.Command("/bin/sh", "-c", s)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", s, out)
		return string(out)
	}
	assert.Contains(t, runSh(gen), "generated a key-encryption key")
	key, err := os.ReadFile(filepath.Join(keys, "kek"))
	require.NoError(t, err)
	decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(key)))
	require.NoError(t, err)
	assert.Len(t, decoded, 32)
	st, err := os.Stat(filepath.Join(keys, "kek"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	assert.Empty(t, runSh(gen), "a second start keeps the key")
	again, err := os.ReadFile(filepath.Join(keys, "kek"))
	require.NoError(t, err)
	assert.Equal(t, key, again)

	// The ripple service starts serve with the generated key, or with the one it was given.
	start := script(ripple.Command[0])
	require.Contains(t, start, "exec ripple serve --addr 0.0.0.0:3210")
	start = strings.Replace(start, "exec ripple serve --addr 0.0.0.0:3210", "exec env", 1)
	generated := strings.TrimSpace(string(key))
	assert.Contains(t, runSh(start, "RIPPLE_KEY_ENCRYPTION_KEY="), "RIPPLE_KEY_ENCRYPTION_KEY="+generated+"\n")
	assert.Contains(t, runSh(start, "RIPPLE_KEY_ENCRYPTION_KEY=mine"), "RIPPLE_KEY_ENCRYPTION_KEY=mine\n")

	// And the binary takes the generated key.
	db := testdb.NewSchema(t)
	res := runBinary(t, map[string]string{"DATABASE_URL": db.URL, "RIPPLE_KEY_ENCRYPTION_KEY": generated}, "admin-key", "--schema", db.Schema)
	require.Equal(t, 0, res.code, res.stderr)
}
