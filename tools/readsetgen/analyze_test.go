package main

import (
	"reflect"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

func tbl(t string) TableRead { return TableRead{Table: t, Kind: ReadTable} }
func prm(t, c string, n int) TableRead {
	return TableRead{Table: t, Kind: ReadParam, Column: c, Param: n}
}
func rng(t string, spec *RangeSpec) TableRead {
	return TableRead{Table: t, Kind: ReadRange, Range: spec}
}
func out(t, c string, k int) TableRead {
	return TableRead{Table: t, Kind: ReadOutput, Column: c, Output: k}
}

func analyzeSQL(t *testing.T, sql string) ([]TableRead, error) {
	t.Helper()
	res, err := pg_query.Parse(sql)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if len(res.Stmts) != 1 {
		t.Fatalf("want 1 statement, got %d", len(res.Stmts))
	}
	return Analyze(res.Stmts[0].Stmt)
}

func TestAnalyze(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sql  string
		want []TableRead
	}{
		{"single table equality", `SELECT id, name FROM users WHERE id = $1`,
			[]TableRead{prm("users", "id", 1)}},
		{"qualified by alias", `SELECT u.id FROM users u WHERE u.email = $2`,
			[]TableRead{prm("users", "email", 2)}},
		{"schema-qualified table", `SELECT id FROM public.users WHERE public.users.id = $1`,
			[]TableRead{prm("users", "id", 1)}},
		{"any of array param", `SELECT id FROM messages WHERE conversation_id = ANY($1::bigint[])`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"any of uncast param", `SELECT id FROM messages WHERE conversation_id = ANY($3)`,
			[]TableRead{prm("messages", "conversation_id", 3)}},
		{"param in ANY position is not a key", `SELECT id FROM messages WHERE $1 = ANY(tags)`,
			[]TableRead{tbl("messages")}},
		{"reversed", `SELECT id FROM messages WHERE $1 = conversation_id`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"cast on param", `SELECT id FROM messages WHERE conversation_id = $1::bigint`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"cast to array on plain equality", `SELECT id FROM t WHERE arr = $1::bigint[]`,
			[]TableRead{tbl("t")}},
		{"cast on column", `SELECT id FROM messages WHERE conversation_id::text = $1`,
			[]TableRead{tbl("messages")}},
		{"function of column", `SELECT id FROM users WHERE lower(email) = lower($1)`,
			[]TableRead{tbl("users")}},
		{"first of several equalities", `SELECT user_id FROM p WHERE conversation_id = $1 AND user_id = $2`,
			[]TableRead{prm("p", "conversation_id", 1)}},
		{"equality among other conjuncts", `SELECT id FROM m WHERE sender_id > $2 AND (body <> '' AND conversation_id = $1 AND $3 = ANY(tags))`,
			[]TableRead{rng("m", &RangeSpec{Eq: []EqParam{{"conversation_id", 1}}, Order: []string{"sender_id"},
				Bounds: []RangeBound{{Op: ">", Params: []int{2}}}})}},
		{"order by and limit", `SELECT id, body FROM messages WHERE conversation_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"aggregate and group by", `SELECT model, count(*) FROM e WHERE conversation_id = $1 GROUP BY model HAVING count(*) > 1`,
			[]TableRead{prm("e", "conversation_id", 1)}},
		{"distinct on", `SELECT DISTINCT ON (conversation_id) conversation_id, id FROM messages WHERE conversation_id = ANY($1::bigint[]) ORDER BY conversation_id, created_at DESC`,
			[]TableRead{prm("messages", "conversation_id", 1)}},
		{"range predicate only", `SELECT id FROM messages WHERE created_at > $1`,
			[]TableRead{rng("messages", &RangeSpec{Order: []string{"created_at"}, Bounds: []RangeBound{{Op: ">", Params: []int{1}}}})}},
		{"or in where", `SELECT id FROM messages WHERE conversation_id = $1 OR sender_id = $2`,
			[]TableRead{tbl("messages")}},
		{"not", `SELECT id FROM messages WHERE NOT (conversation_id = $1)`,
			[]TableRead{tbl("messages")}},
		{"equality to constant", `SELECT id FROM messages WHERE conversation_id = 7`,
			[]TableRead{tbl("messages")}},
		{"no where", `SELECT id FROM users`, []TableRead{tbl("users")}},
		{"no tables", `SELECT now()`, nil},
		{"unqualified column with two tables is ambiguous",
			`SELECT m.id FROM messages m JOIN users u ON u.id = m.sender_id WHERE conversation_id = $1`,
			[]TableRead{tbl("messages"), tbl("users")}},

		// Joins.
		{"join with primary key in output",
			`SELECT c.id, c.type FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), out("conversations", "id", 0)}},
		{"join in where, key later in output",
			`SELECT p.conversation_id, u.name, u.id FROM conversation_participants p, users u WHERE p.user_id = u.id AND p.conversation_id = $1`,
			[]TableRead{prm("conversation_participants", "conversation_id", 1), out("users", "id", 2)}},
		{"join without key in output",
			`SELECT c.type FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("conversations")}},
		{"join key output under another expression",
			`SELECT c.id + 0 FROM p JOIN conversations c ON c.id = p.conversation_id WHERE p.user_id = $1`,
			[]TableRead{tbl("conversations"), prm("p", "user_id", 1)}},
		{"join key output after star",
			`SELECT p.*, c.id FROM p JOIN conversations c ON c.id = p.conversation_id WHERE p.user_id = $1`,
			[]TableRead{tbl("conversations"), prm("p", "user_id", 1)}},
		{"join key output before star",
			`SELECT c.id, p.* FROM p JOIN conversations c ON c.id = p.conversation_id WHERE p.user_id = $1`,
			[]TableRead{out("conversations", "id", 0), prm("p", "user_id", 1)}},
		{"join filter on the joined table's other column",
			`SELECT u.id FROM m JOIN users u ON u.id = m.sender_id AND u.active WHERE m.conversation_id = $1`,
			[]TableRead{prm("m", "conversation_id", 1), tbl("users")}},
		{"where filter on the joined table's other column",
			`SELECT u.id FROM m JOIN users u ON u.id = m.sender_id WHERE m.conversation_id = $1 AND u.name <> ''`,
			[]TableRead{prm("m", "conversation_id", 1), tbl("users")}},
		{"joined table ordered under a limit",
			`SELECT u.id FROM m JOIN users u ON u.id = m.sender_id WHERE m.conversation_id = $1 ORDER BY u.name LIMIT 10`,
			[]TableRead{prm("m", "conversation_id", 1), tbl("users")}},
		{"joined table ordered without a limit",
			`SELECT u.id FROM m JOIN users u ON u.id = m.sender_id WHERE m.conversation_id = $1 ORDER BY u.name`,
			[]TableRead{prm("m", "conversation_id", 1), out("users", "id", 0)}},
		{"order by position under a limit",
			`SELECT u.id, u.name FROM m JOIN users u ON u.id = m.sender_id WHERE m.conversation_id = $1 ORDER BY 2 LIMIT 10`,
			[]TableRead{prm("m", "conversation_id", 1), tbl("users")}},
		{"self-join equality is a filter",
			`SELECT u.id FROM m JOIN users u ON u.id = u.parent_id WHERE m.conversation_id = $1`,
			[]TableRead{prm("m", "conversation_id", 1), tbl("users")}},
		{"join param on the joined table",
			`SELECT u.id FROM m JOIN users u ON u.id = m.sender_id AND u.org_id = $2 WHERE m.conversation_id = $1`,
			[]TableRead{prm("m", "conversation_id", 1), prm("users", "org_id", 2)}},
		{"left join nullable side",
			`SELECT m.id, u.id FROM messages m LEFT JOIN users u ON u.id = m.sender_id WHERE m.conversation_id = $1`,
			[]TableRead{prm("messages", "conversation_id", 1), out("users", "id", 1)}},
		// (The nullable side is read by the keys returned: every row of users shows whatever
		// messages holds, and only messages of those senders matter. See outputkey_test.go.)
		{"left join preserved side",
			`SELECT u.id, m.id FROM users u LEFT JOIN messages m ON m.sender_id = u.id`,
			[]TableRead{{Table: "messages", Kind: ReadOutputKey, Column: "sender_id"}, tbl("users")}},
		{"left join preserved side not filtered by on",
			`SELECT u.id FROM users u LEFT JOIN messages m ON m.sender_id = u.id AND u.id = $1`,
			[]TableRead{{Table: "messages", Kind: ReadOutputKey, Column: "sender_id"}, tbl("users")}},
		{"left join preserved side, key not returned",
			`SELECT m.id FROM users u LEFT JOIN messages m ON m.sender_id = u.id`,
			[]TableRead{tbl("messages"), tbl("users")}},
		{"left join nullable side filtered by its on",
			`SELECT u.id FROM users u LEFT JOIN messages m ON m.sender_id = u.id AND m.conversation_id = $1`,
			[]TableRead{prm("messages", "conversation_id", 1), tbl("users")}},
		{"left join nullable side filtered in where",
			`SELECT u.id FROM users u LEFT JOIN messages m ON m.sender_id = u.id WHERE m.conversation_id = $1`,
			[]TableRead{prm("messages", "conversation_id", 1), tbl("users")}},
		{"right join preserved side",
			`SELECT m.id, u.id FROM messages m RIGHT JOIN users u ON u.id = m.sender_id WHERE m.conversation_id = $1`,
			[]TableRead{prm("messages", "conversation_id", 1), tbl("users")}},
		{"full join",
			`SELECT m.id, u.id FROM messages m FULL JOIN users u ON u.id = m.sender_id AND m.conversation_id = $1`,
			[]TableRead{tbl("messages"), tbl("users")}},
		{"inner join nested in nullable side",
			`SELECT a.id, b.id, c.id FROM a LEFT JOIN (b JOIN c ON c.id = b.c_id AND b.k = $1) ON b.a_id = a.id WHERE a.x = $2`,
			[]TableRead{prm("a", "x", 2), prm("b", "k", 1), out("c", "id", 2)}},
		{"natural join", `SELECT c.id FROM p NATURAL JOIN conversations c WHERE p.user_id = $1`,
			[]TableRead{tbl("conversations"), prm("p", "user_id", 1)}},
		{"join using", `SELECT c.id FROM p JOIN c USING (conversation_id) WHERE p.user_id = $1`,
			[]TableRead{tbl("c"), prm("p", "user_id", 1)}},
		{"column aliases", `SELECT u.a FROM users u(a, b) WHERE u.a = $1`,
			[]TableRead{tbl("users")}},
		{"self join", `SELECT m2.id FROM messages m1 JOIN messages m2 ON m2.id = m1.reply_to WHERE m1.conversation_id = $1`,
			[]TableRead{prm("messages", "conversation_id", 1), out("messages", "id", 0)}},
		{"self join, one side whole", `SELECT m2.body FROM messages m1 JOIN messages m2 ON m2.id = m1.reply_to WHERE m1.conversation_id = $1`,
			[]TableRead{tbl("messages")}},
		{"lateral subquery filtering on joined table",
			`SELECT u.id FROM m JOIN users u ON u.id = m.sender_id JOIN LATERAL (SELECT 1 FROM x WHERE x.v = u.name) l ON true WHERE m.conversation_id = $1`,
			[]TableRead{prm("m", "conversation_id", 1), tbl("users"), tbl("x")}},

		// Subqueries, CTEs, set operations.
		{"exists",
			`SELECT m.id FROM messages m WHERE m.conversation_id = $1 AND NOT EXISTS (SELECT 1 FROM message_embeddings e WHERE e.message_id = m.id AND e.conversation_id = $1)`,
			[]TableRead{tbl("message_embeddings"), prm("messages", "conversation_id", 1)}},
		{"in subquery",
			`SELECT id FROM messages WHERE conversation_id IN (SELECT conversation_id FROM conversation_participants WHERE user_id = $1)`,
			[]TableRead{tbl("conversation_participants"), tbl("messages")}},
		{"scalar subquery in target list",
			`SELECT c.id, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) FROM conversations c WHERE c.id = $1`,
			[]TableRead{prm("conversations", "id", 1), tbl("messages")}},
		{"subquery in from",
			`SELECT s.id FROM (SELECT id FROM users WHERE id = $1) s`,
			[]TableRead{tbl("users")}},
		{"cte",
			`WITH c AS (SELECT message_id FROM e WHERE e.conversation_id = $1) SELECT m.id FROM c JOIN messages m ON m.id = c.message_id`,
			[]TableRead{tbl("e"), out("messages", "id", 0)}},
		{"cte with the name of a table it reads",
			`WITH users AS (SELECT * FROM users WHERE id = $1) SELECT id FROM users`,
			[]TableRead{tbl("users")}},
		{"recursive cte",
			`WITH RECURSIVE r AS (SELECT id, parent_id FROM nodes WHERE id = $1 UNION ALL SELECT n.id, n.parent_id FROM nodes n JOIN r ON n.id = r.parent_id) SELECT id FROM r`,
			[]TableRead{tbl("nodes")}},
		{"cte sees earlier siblings only",
			`WITH a AS (SELECT 1 FROM b), b AS (SELECT 1 FROM a) SELECT * FROM b`,
			[]TableRead{tbl("b")}}, // a's body reads table b; b's body reads CTE a
		{"union",
			`SELECT id FROM users WHERE id = $1 UNION SELECT id FROM admins WHERE id = $1`,
			[]TableRead{tbl("admins"), tbl("users")}},
		{"values", `VALUES (1)`, nil},

		// Writes.
		{"insert returning", `INSERT INTO messages (sender_id, body) VALUES ($1, $2) RETURNING id`,
			[]TableRead{tbl("messages")}},
		{"insert select", `INSERT INTO a (x) SELECT x FROM b WHERE id = $1`,
			[]TableRead{tbl("a"), tbl("b")}},
		{"update from", `UPDATE conversations c SET title = $2 FROM users u WHERE c.id = $1 AND u.id = c.owner`,
			[]TableRead{tbl("conversations"), tbl("users")}},
		{"delete", `DELETE FROM message_embeddings WHERE model <> $1`,
			[]TableRead{tbl("message_embeddings")}},
		{"writing cte", `WITH d AS (DELETE FROM a WHERE id = $1 RETURNING id) SELECT id FROM d`,
			[]TableRead{tbl("a")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := analyzeSQL(t, tt.sql)
			if err != nil {
				t.Fatalf("Analyze: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Analyze(%s)\n got %+v\nwant %+v", tt.sql, got, tt.want)
			}
		})
	}
}

func TestAnalyzeRejectsSqlcSlice(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		`SELECT id FROM users WHERE id = ANY(sqlc.slice(ids))`,
		`SELECT id FROM users WHERE id = sqlc.arg(id) AND email = $2`,
	} {
		if _, err := analyzeSQL(t, sql); err == nil {
			t.Errorf("Analyze(%s): want an error", sql)
		}
	}
}
