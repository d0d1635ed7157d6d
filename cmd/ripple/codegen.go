package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/codegen"
	"github.com/ripplehq/ripple/functions"
)

// apiFile is the name codegen writes in --out.
const apiFile = "api.ts"

func codegenFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("codegen", flag.ContinueOnError)
	out := fs.String("out", "web/src/generated", "`directory` to write "+apiFile+" into")
	return fs, func(ctx context.Context, args []string) error {
		if err := noArgs("codegen", args); err != nil {
			return err
		}
		reg, err := appRegistry()
		if err != nil {
			return err
		}
		src := generateAPI(reg.Signatures())
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return fmt.Errorf("codegen: %w", err)
		}
		path := filepath.Join(*out, apiFile)
		if err := os.WriteFile(path, src, 0o644); err != nil {
			return fmt.Errorf("codegen: %w", err)
		}
		_, err = fmt.Fprintf(e.stdout, "wrote %s\n", path)
		return err
	}
}

// appRegistry is the application's functions, registered without their services (codegen and
// the function listing only read the registry; nothing is run).
func appRegistry() (*engine.Registry, error) {
	reg := engine.NewRegistry()
	if err := registerFunctions(reg, &functions.Deps{}); err != nil {
		return nil, err
	}
	return reg, nil
}

// generateAPI is the TypeScript module of typed references to the public functions.
func generateAPI(sigs []engine.FunctionSignature) []byte { return codegen.TypeScriptAPI(sigs) }
