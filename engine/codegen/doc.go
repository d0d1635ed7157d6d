// Package codegen writes the TypeScript an application's web client uses: typed references to its
// public functions (api.ts, for @ripplehq/client) from a Registry's signatures. `ripple codegen`
// runs it for the chat; another application's binary calls TypeScriptAPI on its own registry
// (examples/questions/cmd/questions does, as `questions codegen`).
package codegen
