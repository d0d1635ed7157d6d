package main

import (
	"os"
	"path/filepath"
	"testing"

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
