// Package schema holds Ripple's numbered SQL migrations, embedded in the binary, and the
// migrator that applies them together with River's own migrations (through rivermigrate) and
// then (re)installs change capture on every application table.
//
// Migrations run in one Postgres schema (Ripple's Config.Schema, "public" by default), so tests
// can give each test a schema of its own.
package schema
