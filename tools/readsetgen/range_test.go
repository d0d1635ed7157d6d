package main

import (
	"reflect"
	"testing"
)

func TestAnalyzeRanges(t *testing.T) {
	t.Parallel()
	desc2 := []string{"created_at", "id"}
	tests := []struct {
		name string
		sql  string
		want []TableRead
	}{
		{"keyset page, guarded bounds, limit param",
			`SELECT id, sender_id, conversation_id, body, created_at FROM messages
			 WHERE conversation_id = $1
			   AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::bigint))
			   AND ($4::timestamptz IS NULL OR (created_at, id) >= ($4::timestamptz, $5::bigint))
			 ORDER BY created_at DESC, id DESC LIMIT $6`,
			[]TableRead{rng("messages", &RangeSpec{Eq: []EqParam{{"conversation_id", 1}}, Order: desc2, Desc: true,
				Bounds: []RangeBound{{Op: "<", Params: []int{2, 3}, Guard: 2}, {Op: ">=", Params: []int{4, 5}, Guard: 4}},
				Limit:  6, Outputs: []int{4, 0}})}},
		{"constant limit, ascending, reversed bound",
			`SELECT m.id FROM messages m WHERE m.conversation_id = $1 AND $2 < m.id ORDER BY m.id LIMIT 50`,
			[]TableRead{rng("messages", &RangeSpec{Eq: []EqParam{{"conversation_id", 1}}, Order: []string{"id"},
				Bounds: []RangeBound{{Op: ">", Params: []int{2}}}, LimitConst: 50, Outputs: []int{0}})}},
		{"first page: limit without bounds",
			`SELECT id, created_at FROM messages WHERE conversation_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`,
			[]TableRead{rng("messages", &RangeSpec{Eq: []EqParam{{"conversation_id", 1}}, Order: desc2, Desc: true,
				Limit: 2, Outputs: []int{1, 0}})}},
		{"order column not returned: bounds only",
			`SELECT body FROM messages WHERE conversation_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`,
			[]TableRead{rng("messages", &RangeSpec{Eq: []EqParam{{"conversation_id", 1}}, Order: []string{"id"}, Desc: true,
				Bounds: []RangeBound{{Op: "<", Params: []int{2}}}})}},
		{"bound on a prefix of the order", `SELECT id, created_at FROM messages WHERE created_at <= $1 ORDER BY created_at, id LIMIT 5`,
			[]TableRead{rng("messages", &RangeSpec{Order: desc2, Bounds: []RangeBound{{Op: "<=", Params: []int{1}}},
				LimitConst: 5, Outputs: []int{1, 0}})}},
		{"bound not on the order: ignored", `SELECT id FROM messages WHERE conversation_id = $1 AND sender_id > $2 ORDER BY id LIMIT 5`,
			[]TableRead{rng("messages", &RangeSpec{Eq: []EqParam{{"conversation_id", 1}}, Order: []string{"id"}, LimitConst: 5, Outputs: []int{0}})}},
		{"no limit: count in a range", `SELECT count(*) FROM messages WHERE conversation_id = $1 AND id > $2`,
			[]TableRead{rng("messages", &RangeSpec{Eq: []EqParam{{"conversation_id", 1}}, Order: []string{"id"},
				Bounds: []RangeBound{{Op: ">", Params: []int{2}}}})}},
		{"mixed directions", `SELECT id FROM messages WHERE conversation_id = $1 ORDER BY created_at DESC, id LIMIT 5`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"offset", `SELECT id FROM messages WHERE conversation_id = $1 AND id > $2 ORDER BY id LIMIT 5 OFFSET 5`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"window function sees past the limit", `SELECT id, count(*) OVER () FROM messages WHERE conversation_id = $1 ORDER BY id LIMIT 5`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"distinct", `SELECT DISTINCT id FROM messages WHERE conversation_id = $1 ORDER BY id LIMIT 5`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"group by", `SELECT id FROM messages WHERE conversation_id = $1 GROUP BY id ORDER BY id LIMIT 5`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"expression order", `SELECT id FROM messages WHERE conversation_id = $1 ORDER BY id + 1 LIMIT 5`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"limit expression", `SELECT id FROM messages WHERE conversation_id = $1 ORDER BY id LIMIT $2 + 1`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"with ties", `SELECT id FROM messages WHERE conversation_id = $1 ORDER BY id FETCH FIRST 5 ROWS WITH TIES`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"join: no range", `SELECT m.id FROM messages m JOIN users u ON u.id = m.sender_id WHERE m.conversation_id = $1 AND m.id < $2 ORDER BY m.id LIMIT 5`,
			[]TableRead{prm("messages", "conversation_id", 1), tbl("users")}},
		{"unguarded or", `SELECT id FROM messages WHERE conversation_id = $1 AND (id < $2 OR id > $3) ORDER BY id LIMIT 5`,
			[]TableRead{rng("messages", &RangeSpec{Eq: []EqParam{{"conversation_id", 1}}, Order: []string{"id"}, LimitConst: 5, Outputs: []int{0}})}},
		{"bound on a constant", `SELECT id FROM messages WHERE conversation_id = $1 AND id < 10 ORDER BY id DESC`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := analyzeSQL(t, tt.sql)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Analyze(%s)\n got %s\nwant %s", tt.sql, show(got), show(tt.want))
			}
		})
	}
}

func show(reads []TableRead) string {
	s := ""
	for _, r := range reads {
		s += r.goLiteral() + " "
	}
	return s
}

func TestAnalyzeNamedParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sql  string
		want []TableRead
	}{
		{`SELECT id FROM users WHERE id = sqlc.arg(id)`, []TableRead{prm("users", "id", 1)}},
		{`SELECT id FROM users WHERE email = @email AND id = sqlc.narg('id')::bigint`, []TableRead{prm("users", "email", 1)}},
		{`SELECT id FROM users WHERE id = @id::bigint`, []TableRead{prm("users", "id", 1)}},
		{`SELECT id, created_at FROM messages WHERE conversation_id = @conversation_id
		   AND (sqlc.narg(before_at)::timestamptz IS NULL OR (created_at, id) < (sqlc.narg(before_at)::timestamptz, @before_id::bigint))
		   ORDER BY created_at DESC, id DESC LIMIT @max_rows`,
			[]TableRead{rng("messages", &RangeSpec{Eq: []EqParam{{"conversation_id", 1}}, Order: []string{"created_at", "id"}, Desc: true,
				Bounds: []RangeBound{{Op: "<", Params: []int{2, 3}, Guard: 2}}, Limit: 4, Outputs: []int{1, 0}})}},
	}
	for _, tt := range tests {
		got, err := analyzeSQL(t, tt.sql)
		if err != nil {
			t.Fatalf("Analyze(%s): %v", tt.sql, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Analyze(%s)\n got %s\nwant %s", tt.sql, show(got), show(tt.want))
		}
	}
}

func TestAnalyzeLateralPerKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sql  string
		want []TableRead
	}{
		{`SELECT k.conversation_id, m.id FROM unnest($1::bigint[]) AS k(conversation_id)
		  CROSS JOIN LATERAL (SELECT id, created_at FROM messages WHERE messages.conversation_id = k.conversation_id
		                      ORDER BY created_at DESC, id DESC LIMIT 1) m`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{`SELECT m.id FROM unnest($2::bigint[]) AS k
		  JOIN LATERAL (SELECT x.id FROM messages x WHERE k = x.conversation_id AND x.body <> '' LIMIT 1) m ON true`,
			[]TableRead{tbl("messages")}}, // k unqualified on the key side: could be a column of messages
		{`SELECT m.id FROM unnest($2::bigint[]) AS k(c)
		  JOIN LATERAL (SELECT x.id FROM messages x WHERE k.c = x.conversation_id AND x.body <> '' LIMIT 1) m ON true`,
			[]TableRead{prm("messages", "conversation_id", 2)}},
		{`SELECT m.id FROM unnest($1::bigint[]) AS k(c)
		  CROSS JOIN LATERAL (SELECT id FROM messages WHERE conversation_id = k.c OR true LIMIT 1) m`,
			[]TableRead{tbl("messages")}},
		{`SELECT m.id FROM unnest($1::bigint[]) AS k(c)
		  CROSS JOIN LATERAL (SELECT messages.id FROM messages JOIN users u ON u.id = messages.sender_id WHERE messages.conversation_id = k.c) m`,
			[]TableRead{tbl("messages"), tbl("users")}},
		{`SELECT m.id FROM unnest($1::bigint[]) AS k(c)
		  CROSS JOIN (SELECT id FROM messages WHERE conversation_id = 3) m`,
			[]TableRead{tbl("messages")}},

		// Several arrays: the key is the column the equality names.
		{`SELECT m.id FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[]) AS k(c, at, rid)
		  CROSS JOIN LATERAL (SELECT x.id FROM messages x WHERE x.conversation_id = k.c AND (x.created_at, x.id) > (k.at, k.rid) LIMIT 1) m`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{`SELECT m.id FROM unnest($1::bigint[], $2::bigint[]) AS k(c, s)
		  CROSS JOIN LATERAL (SELECT x.id FROM messages x WHERE x.sender_id = k.s LIMIT 1) m`,
			[]TableRead{prm("messages", "sender_id", 2)}},
		{`SELECT m.id FROM ROWS FROM (unnest($1::bigint[]), unnest($2::timestamptz[]), unnest($3::pg_catalog.int8[])) AS k(c, at, rid)
		  CROSS JOIN LATERAL (SELECT x.id FROM messages x WHERE x.conversation_id = k.rid AND (x.created_at, x.id) > (k.at, k.rid) LIMIT 1) m`,
			[]TableRead{prm("messages", "conversation_id", 3)}},
		{`SELECT m.id FROM ROWS FROM (unnest($1::bigint[]), unnest($2::my_row[])) AS k(c, d)
		  CROSS JOIN LATERAL (SELECT x.id FROM messages x WHERE x.conversation_id = k.c LIMIT 1) m`,
			[]TableRead{tbl("messages")}}, // a composite array would unnest to several columns
		{`SELECT m.id FROM ROWS FROM (unnest($1::bigint[]), unnest($2)) AS k(c, d)
		  CROSS JOIN LATERAL (SELECT x.id FROM messages x WHERE x.conversation_id = k.c LIMIT 1) m`,
			[]TableRead{tbl("messages")}}, // an uncast array: its type is unknown
		{`SELECT m.id FROM ROWS FROM (unnest($1::bigint[]), generate_series(1, 3)) AS k(c, d)
		  CROSS JOIN LATERAL (SELECT x.id FROM messages x WHERE x.conversation_id = k.c LIMIT 1) m`,
			[]TableRead{tbl("messages")}},
		{`SELECT m.id FROM ROWS FROM (unnest($1::bigint[], $2::bigint[])) AS k(c, d)
		  CROSS JOIN LATERAL (SELECT x.id FROM messages x WHERE x.conversation_id = k.c LIMIT 1) m`,
			[]TableRead{tbl("messages")}},
		{`SELECT m.id FROM unnest($1::bigint[], $2::bigint[]) AS k(c)
		  CROSS JOIN LATERAL (SELECT x.id FROM messages x WHERE x.conversation_id = k.c LIMIT 1) m`,
			[]TableRead{tbl("messages")}}, // fewer column names than arrays
		{`SELECT m.id FROM unnest($1::bigint[], ARRAY[1, 2]) AS k(c, d)
		  CROSS JOIN LATERAL (SELECT x.id FROM messages x WHERE x.conversation_id = k.d LIMIT 1) m`,
			[]TableRead{tbl("messages")}}, // not every argument is a parameter
		{`SELECT m.id FROM unnest($1::bigint[]) WITH ORDINALITY AS k(c, i)
		  CROSS JOIN LATERAL (SELECT x.id FROM messages x WHERE x.conversation_id = k.c LIMIT 1) m`,
			[]TableRead{tbl("messages")}},

		// A capped count: t reached through a plain subquery.
		{`SELECT k.c, n.unread FROM unnest($1::bigint[]) AS k(c)
		  CROSS JOIN LATERAL (SELECT count(*) AS unread FROM (SELECT 1 FROM messages x WHERE x.conversation_id = k.c AND x.sender_id <> $2 LIMIT $3) s) n`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{`SELECT n.c FROM unnest($1::bigint[]) AS k(c)
		  CROSS JOIN LATERAL (SELECT count(*) AS c FROM (SELECT 1 FROM (SELECT x.id FROM messages x WHERE k.c = x.conversation_id) s2 LIMIT 5) s1) n`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{`SELECT n.c FROM unnest($1::bigint[]) AS k(c)
		  CROSS JOIN LATERAL (SELECT count(*) AS c FROM (SELECT 1 FROM messages x WHERE x.conversation_id = k.c) k) n`,
			[]TableRead{tbl("messages")}}, // a level named k: k.c is not the unnest's column
		{`SELECT n.c FROM unnest($1::bigint[]) AS k(c)
		  CROSS JOIN LATERAL (SELECT count(*) AS c FROM (SELECT 1 FROM messages x WHERE x.conversation_id = k.c UNION ALL SELECT 1 FROM messages) s) n`,
			[]TableRead{tbl("messages")}},
		{`SELECT n.c FROM unnest($1::bigint[]) AS k(c)
		  CROSS JOIN LATERAL (SELECT count(*) AS c FROM (SELECT 1 FROM messages x WHERE x.conversation_id = k.c) s, users u) n`,
			[]TableRead{tbl("messages"), tbl("users")}},

		// A table joined to the keys at the top level.
		{`SELECT k.c, u.id, u.name FROM unnest($1::bigint[]) AS k(c)
		  JOIN conversation_participants p ON p.conversation_id = k.c
		  JOIN users u ON u.id = p.user_id`,
			[]TableRead{prm("conversation_participants", "conversation_id", 1), out("users", "id", 1)}},
		{`SELECT k.c, p.user_id FROM unnest($1::bigint[], $2::bigint[]) AS k(c, d)
		  JOIN conversation_participants p ON k.d = p.conversation_id`,
			[]TableRead{prm("conversation_participants", "conversation_id", 2)}},
		{`SELECT k.c, p.user_id FROM unnest($1::bigint[]) AS k(c)
		  LEFT JOIN conversation_participants p ON p.conversation_id = k.c AND p.user_id = $2`,
			[]TableRead{prm("conversation_participants", "conversation_id", 1)}},
		{`SELECT k.c, p.user_id FROM unnest($1::bigint[]) AS k(c)
		  RIGHT JOIN conversation_participants p ON p.conversation_id = k.c`,
			[]TableRead{tbl("conversation_participants")}}, // p is preserved: every row shows
		{`SELECT k.c, p.user_id FROM unnest($1::bigint[]) AS k(c)
		  JOIN conversation_participants p ON p.conversation_id = k.c OR p.user_id = 1`,
			[]TableRead{tbl("conversation_participants")}},
		{`SELECT k.c, p.user_id FROM unnest(ARRAY[1, 2]) AS k(c)
		  JOIN conversation_participants p ON p.conversation_id = k.c`,
			[]TableRead{tbl("conversation_participants")}},
		{`SELECT k.c, p.user_id FROM generate_series(1, $1) AS k(c)
		  JOIN conversation_participants p ON p.conversation_id = k.c`,
			[]TableRead{tbl("conversation_participants")}},
		{`SELECT p.user_id FROM unnest($1::bigint[]) AS k(c)
		  JOIN conversation_participants p ON p.conversation_id = k.c + 1`,
			[]TableRead{tbl("conversation_participants")}},
		{`SELECT p.user_id FROM (unnest($1::bigint[]) AS k(c) JOIN users u ON true) AS j
		  JOIN conversation_participants p ON p.conversation_id = k.c`,
			[]TableRead{tbl("conversation_participants"), tbl("users")}}, // a join alias hides k
	}
	for _, tt := range tests {
		got, err := analyzeSQL(t, tt.sql)
		if err != nil {
			t.Fatalf("Analyze(%s): %v", tt.sql, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Analyze(%s)\n got %s\nwant %s", tt.sql, show(got), show(tt.want))
		}
	}
}
