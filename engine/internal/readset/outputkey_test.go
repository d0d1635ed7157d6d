package readset

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// fakeTx answers every statement with the same rows (each a slice of int64 or nil), then err.
type fakeTx struct {
	pgx.Tx
	rows [][]any
	err  error
}

func (f *fakeTx) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return &fakeRows{rows: f.rows, err: f.err, i: -1}, nil
}

func (f *fakeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, _ := f.Query(ctx, sql, args...)
	return fakeRow{rows.(*fakeRows)}
}

func (f *fakeTx) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, nil
}

type fakeRows struct {
	pgx.Rows
	rows [][]any
	err  error
	i    int
}

func (r *fakeRows) Next() bool {
	r.i++
	return r.i < len(r.rows)
}

func (r *fakeRows) Scan(dest ...any) error {
	for k, v := range r.rows[r.i] {
		switch d := dest[k].(type) {
		case *int64:
			if v == nil {
				return errors.New("cannot scan NULL into *int64")
			}
			*d = v.(int64)
		case **int64:
			if v == nil {
				*d = nil
			} else {
				x := v.(int64)
				*d = &x
			}
		}
	}
	return nil
}

func (r *fakeRows) Err() error {
	if r.i >= len(r.rows) {
		return r.err
	}
	return nil
}
func (r *fakeRows) Close()                 {}
func (r *fakeRows) Values() ([]any, error) { return r.rows[r.i], nil }

type fakeRow struct{ r *fakeRows }

func (f fakeRow) Scan(dest ...any) error {
	if !f.r.Next() {
		return pgx.ErrNoRows
	}
	return f.r.Scan(dest...)
}

func outputKeyDB(rows [][]any, err error, spec Spec) *DB {
	specs := &Specs{}
	specs.Add(map[string]Spec{"List": spec})
	catalog := &Catalog{
		watched: map[string]map[string]bool{
			"messages":                  {"id": true, "conversation_id": true},
			"conversation_participants": {"conversation_id": true, "user_id": true},
		},
		pk: map[string][]string{"messages": {"id"}, "conversation_participants": {"conversation_id", "user_id"}},
	}
	return NewDB(&fakeTx{rows: rows, err: err}, specs, catalog, time.Time{})
}

var listSpec = Spec{Tables: []TableRead{
	{Table: "conversation_participants", Kind: ReadParam, Column: "user_id", Param: 1},
	{Table: "conversation_participants", Kind: ReadOutputKey, Column: "conversation_id", Output: 0},
	{Table: "messages", Kind: ReadOutputKey, Column: "conversation_id", Output: 0},
}}

const listSQL = "-- name: List :many\nSELECT …"

func parts(rs *ReadSet) []string {
	p := strings.Fields(rs.String())
	slices.Sort(p)
	return p
}

// readAll reads every row the way sqlc's :many code does.
func readAll(t *testing.T, db *DB, scanNull bool) error {
	t.Helper()
	rows, err := db.Query(context.Background(), listSQL, int64(7))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var key, other int64
		var p *int64
		var dest []any
		if scanNull {
			dest = []any{&p, &other}
		} else {
			dest = []any{&key, &other}
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
	}
	return rows.Err()
}

func TestOutputKeyRecordsReturnedKeys(t *testing.T) {
	t.Parallel()
	rows := [][]any{{int64(10), int64(1)}, {int64(10), int64(2)}, {int64(11), int64(3)}}
	db := outputKeyDB(rows, nil, listSpec)
	if err := readAll(t, db, false); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"conversation_participants.conversation_id=10", "conversation_participants.conversation_id=11",
		"conversation_participants.user_id=7", "messages.conversation_id=10", "messages.conversation_id=11",
	}
	if got := parts(db.Reads()); !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestOutputKeyNoRowsReadsNoKey(t *testing.T) {
	t.Parallel()
	db := outputKeyDB(nil, nil, listSpec)
	if err := readAll(t, db, false); err != nil {
		t.Fatal(err)
	}
	if got := parts(db.Reads()); !slices.Equal(got, []string{"conversation_participants.user_id=7"}) {
		t.Fatalf("got %v", got)
	}
}

// Whenever the rows returned may not be every driving row, the tables are read whole.
func TestOutputKeyFallsBackToTheTable(t *testing.T) {
	t.Parallel()
	rows := [][]any{{int64(10), int64(1)}, {int64(11), int64(2)}}
	whole := func(t *testing.T, db *DB) {
		t.Helper()
		got := db.Reads().String()
		for _, tbl := range []string{"messages.*", "conversation_participants.*"} {
			if !strings.Contains(got, tbl) {
				t.Errorf("%s not read whole: %s", tbl, got)
			}
		}
	}
	t.Run("closed early", func(t *testing.T) {
		db := outputKeyDB(rows, nil, listSpec)
		r, _ := db.Query(context.Background(), listSQL, int64(7))
		var id int64
		r.Next()
		_ = r.Scan(&id, &id)
		r.Close()
		whole(t, db)
	})
	t.Run("a row never scanned", func(t *testing.T) {
		db := outputKeyDB(rows, nil, listSpec)
		r, _ := db.Query(context.Background(), listSQL, int64(7))
		var id int64
		r.Next()
		r.Next()
		_ = r.Scan(&id, &id)
		for r.Next() {
		}
		whole(t, db)
	})
	t.Run("an error after the rows", func(t *testing.T) {
		db := outputKeyDB(rows, errors.New("division by zero"), listSpec)
		if err := readAll(t, db, false); err == nil {
			t.Fatal("want the error")
		}
		whole(t, db)
	})
	t.Run("a NULL key", func(t *testing.T) {
		db := outputKeyDB([][]any{{int64(10), int64(1)}, {nil, int64(2)}}, nil, listSpec)
		if err := readAll(t, db, true); err != nil {
			t.Fatal(err)
		}
		whole(t, db)
	})
	t.Run("one row of several", func(t *testing.T) {
		db := outputKeyDB(rows, nil, listSpec)
		var id int64
		if err := db.QueryRow(context.Background(), listSQL, int64(7)).Scan(&id, &id); err != nil {
			t.Fatal(err)
		}
		whole(t, db)
	})
	t.Run("values", func(t *testing.T) {
		db := outputKeyDB(rows, nil, listSpec)
		r, _ := db.Query(context.Background(), listSQL, int64(7))
		for r.Next() {
			_, _ = r.Values()
		}
		whole(t, db)
	})
	t.Run("exec", func(t *testing.T) {
		db := outputKeyDB(rows, nil, listSpec)
		_, _ = db.Exec(context.Background(), listSQL, int64(7))
		whole(t, db)
	})
	t.Run("an unwatched column", func(t *testing.T) {
		spec := Spec{Tables: []TableRead{{Table: "messages", Kind: ReadOutputKey, Column: "sender_id", Output: 0}}}
		db := outputKeyDB(rows, nil, spec)
		if err := readAll(t, db, false); err != nil {
			t.Fatal(err)
		}
		if got := parts(db.Reads()); !slices.Equal(got, []string{"messages.*"}) {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("a table the triggers do not know", func(t *testing.T) {
		spec := Spec{Tables: []TableRead{{Table: "a_view", Kind: ReadOutputKey, Column: "id", Output: 0}}}
		db := outputKeyDB(rows, nil, spec)
		if err := readAll(t, db, false); err != nil {
			t.Fatal(err)
		}
		if got := db.Reads().String(); got != "everything" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("no row by QueryRow", func(t *testing.T) {
		db := outputKeyDB(nil, nil, listSpec)
		var id int64
		if err := db.QueryRow(context.Background(), listSQL, int64(7)).Scan(&id, &id); !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if got := parts(db.Reads()); !slices.Equal(got, []string{"conversation_participants.user_id=7"}) {
			t.Fatalf("got %v", got)
		}
	})
}

// ReadOutput keeps its behaviour: a NULL key records nothing, and the primary key is required.
func TestReadOutputUnchanged(t *testing.T) {
	t.Parallel()
	spec := Spec{Tables: []TableRead{
		{Table: "messages", Kind: ReadOutput, Column: "id", Output: 0},
		{Table: "conversation_participants", Kind: ReadOutput, Column: "conversation_id", Output: 0},
	}}
	db := outputKeyDB([][]any{{int64(5), int64(1)}, {nil, int64(2)}}, nil, spec)
	if err := readAll(t, db, true); err != nil {
		t.Fatal(err)
	}
	if got := parts(db.Reads()); !slices.Equal(got, []string{"conversation_participants.*", "messages.id=5"}) {
		t.Fatalf("got %v", got)
	}
}
