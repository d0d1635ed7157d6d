package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

// sqlcConst is one statement as sqlc wrote it into Go, with named parameters already numbered.
var sqlcConst = regexp.MustCompile("(?s)const \\w+ = `(-- name: \\w+ :\\w+.*?)`")

// TestNamedParamsNumberedAsSqlc checks bindNamedParams against sqlc itself: every statement of
// the repository's queries/ analyses the same from its source (named parameters) as from the
// SQL sqlc generated (positional), so the engine reads the arguments sqlc binds.
func TestNamedParamsNumberedAsSqlc(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "queries")
	fromSource, err := AnalyzeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.sql.go"))
	checked := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range sqlcConst.FindAllStringSubmatch(string(src), -1) {
			stmts, err := ParseFile(f, m[1]+";")
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range stmts {
				got, err := Analyze(s.Stmt)
				if err != nil {
					t.Fatalf("%s: %v", s.Name, err)
				}
				if want := fromSource[s.Name]; !reflect.DeepEqual(got, want) {
					t.Errorf("%s: from sqlc's SQL %s, from the source %s", s.Name, show(got), show(want))
				}
				checked++
			}
		}
	}
	if checked != len(fromSource) {
		t.Errorf("checked %d statements of sqlc's output, the source has %d", checked, len(fromSource))
	}
}
