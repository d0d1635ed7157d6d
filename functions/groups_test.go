package functions_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/functions"
)

// group creates a group as creator with the members' emails (name@school.test).
func (b *testBundle) group(t *testing.T, creator engine.Identity, name string, members ...string) string {
	t.Helper()
	emails := make([]string, len(members))
	for i, m := range members {
		emails[i] = m + "@school.test"
	}
	var id string
	require.NoError(t, b.call(t, creator, "conversations:createGroup", map[string]any{"name": name, "emails": emails}, &id))
	return id
}

func (b *testBundle) page(t *testing.T, who engine.Identity, conv string) []functions.Message {
	t.Helper()
	var p functions.PaginationResult[functions.Message]
	require.NoError(t, b.call(t, who, "messages:list", map[string]any{"conversationId": conv, "paginationOpts": map[string]any{"numItems": 100, "cursor": nil}}, &p))
	return p.Page
}

func errData(t *testing.T, err error) map[string]any {
	t.Helper()
	e, ok := engine.AsError(err)
	require.True(t, ok, "%v", err)
	return e.Data
}

func TestGroupLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOpts{})
	ann, bob, cat, dan := b.user(t, "ann"), b.user(t, "bob"), b.user(t, "cat"), b.user(t, "dan")

	// Identity first, then the arguments.
	requireCode(t, b.call(t, engine.Identity{}, "conversations:createGroup", map[string]any{"name": "x", "emails": []string{"bob@school.test"}}, nil), engine.CodeUnauthenticated)
	for _, c := range []struct {
		args   map[string]any
		reason string
	}{
		{map[string]any{"name": "  ", "emails": []string{"bob@school.test"}}, "bad_name"},
		{map[string]any{"name": strings.Repeat("n", 101), "emails": []string{"bob@school.test"}}, "bad_name"},
		{map[string]any{"name": "a\x00b", "emails": []string{"bob@school.test"}}, "bad_name"},
		{map[string]any{"name": "class", "emails": []string{}}, "no_members"},
		{map[string]any{"name": "class", "emails": []string{"ann@school.test"}}, "too_few_members"},
	} {
		err := b.call(t, ann, "conversations:createGroup", c.args, nil)
		requireCode(t, err, engine.CodeInvalidArgument)
		require.Equal(t, c.reason, errData(t, err)["reason"], "%v", c.args)
	}

	// Unknown and malformed addresses are reported each, and nothing is created.
	err := b.call(t, ann, "conversations:createGroup", map[string]any{"name": "class", "emails": []string{"bob@school.test", "ghost@school.test", "not an email", "BOB@school.test"}}, nil)
	requireCode(t, err, engine.CodeInvalidArgument)
	require.Equal(t, "members_refused", errData(t, err)["reason"])
	raw, _ := json.Marshal(errData(t, err)["members"])
	require.JSONEq(t, `[{"email":"not an email","reason":"bad_email"},{"email":"ghost@school.test","reason":"unknown_email"}]`, string(raw))
	var n int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM conversations").Scan(&n))
	require.Zero(t, n)

	conv := b.group(t, ann, " 7B Maths ", "bob", "cat", "ann")
	var list []functions.Conversation
	require.NoError(t, b.call(t, bob, "conversations:list", map[string]any{}, &list))
	require.Len(t, list, 1)
	require.Equal(t, "group", list[0].Type)
	require.Equal(t, "7B Maths", *list[0].Name)
	require.Equal(t, []functions.Participant{
		{ID: ann.UserID, Name: "ann", Email: "ann@school.test", Admin: true},
		{ID: bob.UserID, Name: "bob", Email: "bob@school.test"},
		{ID: cat.UserID, Name: "cat", Email: "cat@school.test"},
	}, list[0].Participants)
	require.Zero(t, list[0].UnreadCount, "members start having read the creation line")
	msgs := b.page(t, cat, conv)
	require.Len(t, msgs, 1)
	require.Equal(t, "system", msgs[0].Kind)
	require.Equal(t, "ann created the group “7B Maths” with bob and cat", msgs[0].Body)

	// Messages and unread counts per member; system lines are not unread.
	b.send(t, bob, conv, "hello class")
	require.Equal(t, "text", b.page(t, ann, conv)[0].Kind)
	require.Equal(t, 1, b.conversation(t, ann, conv).UnreadCount)
	require.Equal(t, 1, b.conversation(t, cat, conv).UnreadCount)
	require.Equal(t, 0, b.conversation(t, bob, conv).UnreadCount)

	// Only admins add, remove others and rename.
	err = b.call(t, bob, "conversations:addMembers", map[string]any{"conversationId": conv, "emails": []string{"dan@school.test"}}, nil)
	requireCode(t, err, engine.CodeForbidden)
	require.Equal(t, "not_admin", errData(t, err)["reason"])
	requireCode(t, b.call(t, bob, "conversations:removeMember", map[string]any{"conversationId": conv, "userId": cat.UserID}, nil), engine.CodeForbidden)
	requireCode(t, b.call(t, bob, "conversations:rename", map[string]any{"conversationId": conv, "name": "mine"}, nil), engine.CodeForbidden)
	// A non-member is refused before anything else, alike for a group that does not exist.
	requireCode(t, b.call(t, dan, "conversations:rename", map[string]any{"conversationId": conv, "name": "x"}, nil), engine.CodeForbidden)
	requireCode(t, b.call(t, dan, "conversations:removeMember", map[string]any{"conversationId": "999999", "userId": dan.UserID}, nil), engine.CodeForbidden)

	var added []string
	require.NoError(t, b.call(t, ann, "conversations:addMembers", map[string]any{"conversationId": conv, "emails": []string{"dan@school.test", "bob@school.test"}}, &added))
	require.Equal(t, []string{dan.UserID}, added, "bob was a member already")
	require.Zero(t, b.conversation(t, dan, conv).UnreadCount, "a newcomer starts at the line that added them")
	require.Len(t, b.page(t, dan, conv), 3, "newcomers see the history")
	require.NoError(t, b.call(t, ann, "conversations:rename", map[string]any{"conversationId": conv, "name": "7B Maths & Physics"}, nil))
	require.Equal(t, "7B Maths & Physics", *b.conversation(t, dan, conv).Name)

	// Removal and leaving; the last admin leaving hands the group to the longest-standing member.
	require.NoError(t, b.call(t, ann, "conversations:removeMember", map[string]any{"conversationId": conv, "userId": cat.UserID}, nil))
	requireCode(t, b.call(t, cat, "messages:list", map[string]any{"conversationId": conv, "paginationOpts": map[string]any{"numItems": 10, "cursor": nil}}, nil), engine.CodeForbidden)
	err = b.call(t, ann, "conversations:removeMember", map[string]any{"conversationId": conv, "userId": cat.UserID}, nil)
	requireCode(t, err, engine.CodeNotFound)
	require.NoError(t, b.call(t, ann, "conversations:removeMember", map[string]any{"conversationId": conv, "userId": ann.UserID}, nil))
	c := b.conversation(t, bob, conv)
	require.Equal(t, []functions.Participant{
		{ID: bob.UserID, Name: "bob", Email: "bob@school.test", Admin: true},
		{ID: dan.UserID, Name: "dan", Email: "dan@school.test"},
	}, c.Participants)
	var bodies []string
	for _, m := range b.page(t, bob, conv) {
		if m.Kind == "system" {
			bodies = append(bodies, m.Body)
		}
	}
	require.Equal(t, []string{"ann left", "ann removed cat", "ann renamed the group to “7B Maths & Physics”", "ann added dan", "ann created the group “7B Maths” with bob and cat"}, bodies)

	// Group functions refuse direct conversations.
	direct := b.direct(t, bob, dan, "dan")
	err = b.call(t, bob, "conversations:rename", map[string]any{"conversationId": direct, "name": "x"}, nil)
	requireCode(t, err, engine.CodeInvalidArgument)
	require.Equal(t, "not_group", errData(t, err)["reason"])

	// The last member leaving deletes the group.
	require.NoError(t, b.call(t, dan, "conversations:removeMember", map[string]any{"conversationId": conv, "userId": dan.UserID}, nil))
	require.NoError(t, b.call(t, bob, "conversations:removeMember", map[string]any{"conversationId": conv, "userId": bob.UserID}, nil))
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM conversations WHERE id = $1", conv).Scan(&n))
	require.Zero(t, n)
}
