package main

import (
	"reflect"
	"testing"
)

func okey(t, c string, k int) TableRead {
	return TableRead{Table: t, Kind: ReadOutputKey, Column: c, Output: k}
}

// conversations:list in one statement: the caller's participations drive it, messages and
// the other participants are read by the conversation ids it returns, and the caller's read
// positions by the caller's key (so another member's reading does not match).
const listOneSQL = `SELECT me.conversation_id, c.id, c.type, rs.last_read_at,
       lm.body, un.unread, u.id, u.name, (b.blocked_id IS NOT NULL)::boolean
FROM conversation_participants me
LEFT JOIN conversation_read_states rs ON rs.user_id = $1 AND rs.conversation_id = me.conversation_id
LEFT JOIN LATERAL (SELECT m.body FROM messages m WHERE m.conversation_id = me.conversation_id
                   ORDER BY m.created_at DESC, m.id DESC LIMIT 1) lm ON true
LEFT JOIN LATERAL (SELECT count(*) AS unread FROM (SELECT 1 FROM messages m
                   WHERE m.conversation_id = me.conversation_id AND m.sender_id <> $1
                     AND (m.created_at, m.id) > (coalesce(rs.last_read_at, '-infinity'), coalesce(rs.last_read_message_id, 0))
                   LIMIT $2) r) un ON true
LEFT JOIN (conversation_participants p
           LEFT JOIN user_blocks b ON b.blocker_id = $1 AND b.blocked_id = p.user_id
           JOIN users u ON u.id = p.user_id) ON p.conversation_id = me.conversation_id
JOIN conversations c ON c.id = me.conversation_id
WHERE me.user_id = $1
ORDER BY me.conversation_id, p.joined_at, u.id`

func TestAnalyzeOutputKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sql  string
		want []TableRead
	}{
		{"the list in one statement", listOneSQL, []TableRead{
			prm("conversation_participants", "user_id", 1), okey("conversation_participants", "conversation_id", 0),
			prm("conversation_read_states", "user_id", 1),
			out("conversations", "id", 1), okey("messages", "conversation_id", 0),
			prm("user_blocks", "blocker_id", 1), out("users", "id", 6)}},
		{"left join lateral on an output key",
			`SELECT p.conversation_id, lm.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages WHERE messages.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), okey("messages", "conversation_id", 0)}},
		{"unqualified column of the lateral's table, key later in the output",
			`SELECT lm.id, p.conversation_id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages WHERE conversation_id = p.conversation_id) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), okey("messages", "conversation_id", 1)}},
		{"left joined table on an output key, with other terms",
			`SELECT p.conversation_id, o.user_id FROM conversation_participants p
			 LEFT JOIN conversation_participants o ON o.conversation_id = p.conversation_id AND o.user_id <> p.user_id
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), okey("conversation_participants", "conversation_id", 0)}},
		{"key from a table inner-joined to the driving one",
			`SELECT c.id, lm.id FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id
			 LEFT JOIN LATERAL (SELECT m.id FROM messages m WHERE m.conversation_id = c.id LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("conversations"), okey("messages", "conversation_id", 0)}},
		{"a parameter read is kept", // narrower: the keys are known before the statement runs
			`SELECT p.conversation_id, o.user_id FROM conversation_participants p
			 LEFT JOIN conversation_participants o ON o.conversation_id = p.conversation_id AND o.user_id = $2
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), prm("conversation_participants", "user_id", 2)}},

		// Refused.
		{"cross join lateral on an output key",
			`SELECT p.conversation_id, lm.id FROM conversation_participants p
			 CROSS JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"inner join lateral on an output key",
			`SELECT p.conversation_id, lm.id FROM conversation_participants p
			 JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"inner join on an output key",
			`SELECT p.conversation_id, m.id FROM conversation_participants p
			 JOIN messages m ON m.conversation_id = p.conversation_id WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"an inner join above the lateral drops driving rows",
			`SELECT p.conversation_id, u.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT m.sender_id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 JOIN users u ON u.id = lm.sender_id WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages"), out("users", "id", 1)}},
		{"key column not in the output",
			`SELECT p.user_id, lm.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"key output under an expression",
			`SELECT p.conversation_id + 0, lm.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"key from another outer-joined side",
			`SELECT p.conversation_id, o.conversation_id, lm.id FROM conversation_participants p
			 LEFT JOIN conversation_participants o ON o.user_id = p.user_id AND o.conversation_id <> p.conversation_id
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = o.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{tbl("conversation_participants"), tbl("messages")}},
		{"key not from a table: an unnest of the driving core",
			`SELECT k.c, lm.id FROM unnest(ARRAY[1, 2]) AS k(c)
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = k.c LIMIT 1) lm ON true`,
			[]TableRead{tbl("messages")}},
		{"key from a subquery of the core",
			`SELECT s.conversation_id, lm.id FROM (SELECT conversation_id FROM conversation_participants WHERE user_id = $1) s
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = s.conversation_id LIMIT 1) lm ON true`,
			[]TableRead{tbl("conversation_participants"), tbl("messages")}},
		{"the outer-joined side filters in WHERE",
			`SELECT p.conversation_id, lm.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1 AND lm.id IS NOT NULL`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"unqualified column in WHERE",
			`SELECT p.conversation_id, lm.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1 AND id > 0`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"a subquery in WHERE looks at the outer-joined side",
			`SELECT p.conversation_id, lm.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1 AND EXISTS (SELECT 1 FROM users x WHERE x.id = lm.id)`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages"), tbl("users")}},
		{"preserved side of a right join",
			`SELECT p.conversation_id, lm.id FROM conversation_participants p
			 RIGHT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"full join",
			`SELECT p.conversation_id, m.id FROM conversation_participants p
			 FULL JOIN messages m ON m.conversation_id = p.conversation_id`,
			[]TableRead{tbl("conversation_participants"), tbl("messages")}},
		{"the key's table on the nullable side",
			`SELECT p.conversation_id, lm.id FROM users x
			 LEFT JOIN conversation_participants p ON p.user_id = x.id
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true`,
			[]TableRead{tbl("conversation_participants"), tbl("messages"), tbl("users")}},
		{"a driving table read whole still keys the outer-joined one",
			`SELECT m.conversation_id, p.user_id FROM messages m
			 LEFT JOIN conversation_participants p ON p.conversation_id = m.conversation_id`,
			[]TableRead{okey("conversation_participants", "conversation_id", 0), tbl("messages")}},
		{"limit",
			`SELECT p.conversation_id, lm.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1 ORDER BY lm.id LIMIT 5`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"distinct",
			`SELECT DISTINCT p.conversation_id, lm.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"group by",
			`SELECT p.conversation_id, count(m.id) FROM conversation_participants p
			 LEFT JOIN messages m ON m.conversation_id = p.conversation_id WHERE p.user_id = $1 GROUP BY p.conversation_id`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"a set-returning function in the target list",
			`SELECT p.conversation_id, unnest(lm.tags) FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT tags FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"a function in FROM above the lateral",
			`SELECT p.conversation_id, g FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 CROSS JOIN generate_series(1, lm.id) g WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"equality under OR",
			`SELECT p.conversation_id, lm.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id OR m.sender_id = 1 LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"key qualified by the lateral's own table",
			`SELECT p.conversation_id, lm.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages p WHERE p.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages")}},
		{"a second table in the lateral",
			`SELECT p.conversation_id, lm.id FROM conversation_participants p
			 LEFT JOIN LATERAL (SELECT m.id FROM messages m JOIN users u ON u.id = m.sender_id WHERE m.conversation_id = p.conversation_id) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages"), tbl("users")}},
		{"several items in FROM",
			`SELECT p.conversation_id, lm.id FROM users x, conversation_participants p
			 LEFT JOIN LATERAL (SELECT id FROM messages m WHERE m.conversation_id = p.conversation_id LIMIT 1) lm ON true
			 WHERE p.user_id = $1`,
			[]TableRead{prm("conversation_participants", "user_id", 1), tbl("messages"), tbl("users")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := analyzeSQL(t, tt.sql)
			if err != nil {
				t.Fatalf("Analyze: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Analyze(%s)\n got %s\nwant %s", tt.sql, show(got), show(tt.want))
			}
		})
	}
}
