package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing/fstest"
	"time"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/ripplemigrate"
	"github.com/ripplehq/ripple/internal/testdb"
)

// The runnable examples share this tiny application: a users table (the one the auth
// service's tables reference; every application has one) and notes.
var exampleMigrations = fstest.MapFS{
	"0001_notes.sql": {Data: []byte(`
CREATE TABLE users (
  id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name  text NOT NULL,
  email text NOT NULL
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));
CREATE TABLE notes (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  author_id bigint NOT NULL REFERENCES users (id),
  body      text   NOT NULL
);
CREATE INDEX notes_author ON notes (author_id, id);
INSERT INTO users (name, email) VALUES ('Ada', 'ada@example.com');
`)},
}

// exampleDB is the examples' schema, migrated once (migrating is the slow part) and dropped by
// TestMain; each example starts from empty tables.
var (
	exampleDBOnce sync.Once
	exampleDB     *testdb.Bundle
)

func dropExampleDB() {
	if exampleDB == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := exampleDB.Drop(ctx); err != nil {
		fmt.Println("dropping the examples' schema:", err)
	}
}

// exampleApp is an engine on the examples' schema, started; stop stops it.
type exampleApp struct {
	db     *testdb.Bundle
	engine *engine.Engine
}

// startExample empties the example's tables in a schema migrated as `ripple migrate` would,
// with the example's migrations, and starts an engine serving reg on it.
func startExample(reg *engine.Registry) *exampleApp {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	exampleDBOnce.Do(func() {
		db, err := testdb.Create(ctx)
		if err != nil {
			panic(err)
		}
		if _, err := ripplemigrate.Migrate(ctx, db.Pool, &ripplemigrate.Opts{Schema: db.Schema, App: exampleMigrations}); err != nil {
			panic(err)
		}
		exampleDB = db
	})
	db := exampleDB
	if _, err := db.Pool.Exec(ctx, "TRUNCATE notes RESTART IDENTITY"); err != nil {
		panic(err)
	}
	e, err := engine.New(db.Pool, reg, &engine.Config{Schema: db.Schema})
	if err != nil {
		panic(err)
	}
	if err := e.Start(ctx); err != nil {
		panic(err)
	}
	return &exampleApp{db: db, engine: e}
}

func (a *exampleApp) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.engine.Stop(ctx); err != nil {
		fmt.Println("stop:", err)
	}
}

// ada is the example's one user (users.id 1), as a verified identity.
var ada = engine.Identity{UserID: "1"}
