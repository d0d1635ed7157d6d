// Package schema holds the chat's numbered SQL migrations, embedded in the binary, and applies
// them with the engine's own and River's (ripplemigrate.Migrate), which then (re)installs change capture
// on every table.
//
// Migrations run in one Postgres schema (Ripple's Config.Schema, "public" by default), so tests
// can give each test a schema of its own.
package schema
