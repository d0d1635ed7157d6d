package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Statement is one named sqlc statement.
type Statement struct {
	Name string
	File string
	Line int // of the statement's `-- name:` header, 1-based
	Stmt *pg_query.Node
}

// nameHeader is sqlc's statement header: `-- name: GetUser :one`.
var nameHeader = regexp.MustCompile(`(?m)^[ \t]*--[ \t]*name:[ \t]*(\S+)[ \t]+:(\S+)`)

// ParseFile splits a sqlc query file into its named statements. Like sqlc, it parses the whole
// file and takes each statement's name from the `-- name:` comment that precedes it.
func ParseFile(file, src string) ([]Statement, error) {
	res, err := pg_query.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var stmts []Statement
	for _, raw := range res.Stmts {
		start := int(raw.StmtLocation)
		end := len(src)
		if raw.StmtLen > 0 {
			end = start + int(raw.StmtLen)
		}
		text := src[start:end]
		m := nameHeader.FindAllStringSubmatchIndex(text, -1)
		line := 1 + strings.Count(src[:start], "\n")
		switch len(m) {
		case 0:
			return nil, fmt.Errorf("%s:%d: statement has no `-- name: Name :kind` header", file, line)
		case 1:
		default:
			return nil, fmt.Errorf("%s:%d: statement has %d `-- name:` headers (missing statement or semicolon?)", file, line, len(m))
		}
		stmts = append(stmts, Statement{
			Name: text[m[0][2]:m[0][3]],
			File: file,
			Line: line + strings.Count(text[:m[0][0]], "\n"),
			Stmt: raw.Stmt,
		})
	}
	return stmts, nil
}

// AnalyzeDir reads every *.sql file in dir and analyses each statement, by name.
func AnalyzeDir(dir string) (map[string][]TableRead, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no .sql files in %s", dir)
	}
	sort.Strings(files)
	specs := map[string][]TableRead{}
	where := map[string]string{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		stmts, err := ParseFile(f, string(src))
		if err != nil {
			return nil, err
		}
		for _, s := range stmts {
			pos := fmt.Sprintf("%s:%d", s.File, s.Line)
			if prev, dup := where[s.Name]; dup {
				return nil, fmt.Errorf("%s: statement name %s already used at %s", pos, s.Name, prev)
			}
			where[s.Name] = pos
			reads, err := Analyze(s.Stmt)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", pos, s.Name, err)
			}
			specs[s.Name] = reads
		}
	}
	return specs, nil
}
