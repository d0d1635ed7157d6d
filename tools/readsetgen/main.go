// Command readsetgen writes the read-set analysis of the sqlc statements in a directory of
// .sql files: for every `-- name: X :kind` statement, which tables it reads and how narrowly
// (engine.ReadTable, ReadParam or ReadOutput). See the package comment in analyze.go for the rules.
//
// Run it from the repository root (the tools module is nested, so `go run` needs -C):
//
//	go -C tools run ./readsetgen -C ..
//
// which reads queries/*.sql and writes queries/readsets.gen.go (package queries).
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	dir := flag.String("C", "", "change to this directory before doing anything (for `go -C tools run ./readsetgen -C ..`)")
	queries := flag.String("queries", "queries", "directory of sqlc query files (*.sql)")
	out := flag.String("out", "queries/readsets.gen.go", "Go file to write")
	pkg := flag.String("package", "queries", "package name of the generated file")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "readsetgen: unexpected arguments:", flag.Args())
		os.Exit(2)
	}
	if *dir != "" {
		if err := os.Chdir(*dir); err != nil {
			fmt.Fprintln(os.Stderr, "readsetgen:", err)
			os.Exit(1)
		}
	}
	src, err := GenerateDir(*queries, *pkg)
	if err == nil {
		err = writeIfChanged(*out, src)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "readsetgen:", err)
		os.Exit(1)
	}
}

// writeIfChanged leaves the file (and its modification time) alone when it is already current.
func writeIfChanged(path string, src []byte) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(src) {
		return nil
	}
	return os.WriteFile(path, src, 0o644)
}
