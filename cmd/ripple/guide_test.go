package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGuideBlocksAreCompiled keeps docs/guide.md from rotting: every Go, SQL and TypeScript
// block must appear verbatim in a file that the build and the tests compile and run (the
// question board, examples/questions, and the engine's runnable examples), every shell line
// may name only make targets, directories, `ripple` commands and flags that exist, and every
// relative link must lead to a file.
func TestGuideBlocksAreCompiled(t *testing.T) {
	root := filepath.Join("..", "..")
	guide, err := os.ReadFile(filepath.Join(root, "docs", "guide.md"))
	require.NoError(t, err)

	var sources []string
	add := func(path string) {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		sources = append(sources, string(b))
	}
	require.NoError(t, filepath.WalkDir(filepath.Join(root, "examples", "questions"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "dist") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			add(path)
		}
		return nil
	}))
	examples, err := filepath.Glob(filepath.Join(root, "engine", "example_*_test.go"))
	require.NoError(t, err)
	require.NotEmpty(t, examples)
	for _, p := range examples {
		add(p)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)

	blocks := regexp.MustCompile("(?s)```(\\w+)\n(.*?)\n```").FindAllStringSubmatch(string(guide), -1)
	require.Greater(t, len(blocks), 15, "the guide's code blocks")
	for _, b := range blocks {
		lang, code := b[1], b[2]
		switch lang {
		case "go", "sql", "ts", "tsx":
			found := false
			for _, src := range sources {
				found = found || strings.Contains(src, code)
			}
			require.True(t, found, "this %s block of docs/guide.md is in no compiled file; copy it from the source again:\n%s", lang, code)
		case "sh":
			for _, line := range strings.Split(code, "\n") {
				if strings.HasPrefix(line, "git clone ") {
					continue // the clone, and the cd into it
				}
				for _, cmd := range strings.Split(line, "&&") {
					checkShell(t, root, string(makefile), strings.Fields(cmd))
				}
			}
		default:
			t.Errorf("docs/guide.md has a %q block; the test checks go, sql, ts, tsx and sh", lang)
		}
	}

	for _, m := range regexp.MustCompile(`\]\((\.\./[^)#]+)`).FindAllStringSubmatch(string(guide), -1) {
		_, err := os.Stat(filepath.Join(root, "docs", m[1]))
		require.NoError(t, err, "docs/guide.md links to %s", m[1])
	}
}

func checkShell(t *testing.T, root, makefile string, words []string) {
	t.Helper()
	switch {
	case len(words) == 0:
	case words[0] == "make":
		for _, target := range words[1:] {
			require.Regexp(t, "(?m)^"+regexp.QuoteMeta(target)+":", makefile, "docs/guide.md runs `make %s`", target)
		}
	case words[0] == "cd":
		st, err := os.Stat(filepath.Join(root, words[1]))
		require.NoError(t, err, "docs/guide.md runs `cd %s`", words[1])
		require.True(t, st.IsDir())
	case len(words) > 3 && words[0] == "go" && words[1] == "run" && words[2] == "./cmd/ripple":
		cmd, ok := findCommand(words[3])
		require.True(t, ok, "docs/guide.md runs `ripple %s`", words[3])
		fs, _ := cmd.flags(&env{getenv: func(string) string { return "" }})
		for _, w := range words[4:] {
			if name, ok := strings.CutPrefix(w, "--"); ok && name != "" {
				name, _, _ = strings.Cut(name, "=")
				require.NotNil(t, fs.Lookup(name), "docs/guide.md passes --%s to `ripple %s`", name, words[3])
			}
		}
	}
}
