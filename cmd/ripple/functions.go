package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/codegen"
)

func functionsFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("functions", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print a JSON array (path, kind, visibility, args, result) instead of a table")
	return fs, func(ctx context.Context, args []string) error {
		if err := noArgs("functions", args); err != nil {
			return err
		}
		reg, err := appRegistry()
		if err != nil {
			return err
		}
		list := describeFunctions(reg.Signatures(), reg.Periodic())
		if *asJSON {
			return printJSON(e.stdout, list)
		}
		w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "FUNCTION\tKIND\tVISIBILITY\tSCHEDULE\tARGUMENTS")
		for _, f := range list {
			schedule := f.Schedule
			if schedule == "" {
				schedule = "-"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", f.Path, f.Kind, f.Visibility, schedule, f.Args)
		}
		return w.Flush()
	}
}

// functionDescription is one line of `ripple functions`: the argument and result shapes are
// TypeScript types of their JSON, as `ripple codegen` writes them, on one line.
type functionDescription struct {
	Path       string `json:"path"`
	Kind       string `json:"kind"`
	Visibility string `json:"visibility"` // public or internal
	Args       string `json:"args"`
	Result     string `json:"result"`
	// Schedule is when the function runs on its own (a cron expression, or "@every
	// <interval>"), if it is periodic.
	Schedule string `json:"schedule,omitempty"`
}

func describeFunctions(sigs []engine.FunctionSignature, periodic []engine.PeriodicInfo) []functionDescription {
	schedules := map[string]string{}
	for _, p := range periodic {
		if schedules[p.Path] != "" {
			schedules[p.Path] += ", "
		}
		schedules[p.Path] += p.Schedule
	}
	g := codegen.NewTypes(true)
	out := make([]functionDescription, 0, len(sigs))
	for _, s := range sigs {
		visibility := "public"
		if s.Internal {
			visibility = "internal"
		}
		out = append(out, functionDescription{
			Path: s.Path, Kind: string(s.Kind), Visibility: visibility,
			Args: g.Args(s.Args, ""), Result: g.Result(s.Result), Schedule: schedules[s.Path],
		})
	}
	return out
}

// printJSON writes v as indented JSON, for the --json form of a listing.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
