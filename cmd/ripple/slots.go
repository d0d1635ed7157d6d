package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/ripplehq/ripple/engine"
)

// slotsFlags: `ripple slots` lists the logical change feed's replication slots with the WAL
// each holds back; `ripple slots drop NAME` drops one (the only way Ripple drops a slot).
func slotsFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("slots", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	schemaName := fs.String("schema", "public", "`name` of the Postgres schema holding the application's tables")
	return fs, func(ctx context.Context, args []string) error {
		dbURL, err := databaseURL(e)
		if err != nil {
			return err
		}
		pool, err := openPool(ctx, dbURL, *schemaName)
		if err != nil {
			return err
		}
		defer pool.Close()
		switch {
		case len(args) == 2 && args[0] == "drop":
			if err := engine.DropSlot(ctx, pool, args[1]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(e.stdout, "dropped %s\n", args[1])
			return err
		case len(args) > 0:
			return usagef("slots: expected no arguments or \"drop NAME\"")
		}
		slots, err := engine.Slots(ctx, pool)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(slots)
		}
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tACTIVE\tPID\tBEHIND\tRETAINED\tWAL")
		for _, s := range slots {
			fmt.Fprintf(w, "%s\t%v\t%d\t%d\t%d\t%s\n", s.Name, s.Active, s.ActivePID, s.BehindBytes, s.RetainedBytes, s.WALStatus)
		}
		return w.Flush()
	}
}
