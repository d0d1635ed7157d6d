package functions

import (
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/queries"
)

// unreadCap is the most unread messages a conversation counts; clients show more as "99+".
const unreadCap = 100

type markReadArgs struct {
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
}

// conversationsMarkRead moves the caller's last-read position in a conversation forward to a
// message of that conversation (the newest one they have seen). It never moves back, so a
// stale tab or a late request cannot make read messages unread again, and it writes nothing
// when the position is already there.
func conversationsMarkRead(ctx *engine.MutationCtx, args markReadArgs) (bool, error) {
	me, err := callerID(ctx)
	if err != nil {
		return false, err
	}
	convID, err := parseID("conversationId", args.ConversationID)
	if err != nil {
		return false, err
	}
	msgID, err := parseID("messageId", args.MessageID)
	if err != nil {
		return false, err
	}
	if err := requireParticipant(ctx, ctx.DB(), convID, me); err != nil {
		return false, err
	}
	q := queries.New()
	msg, err := q.MessageGet(ctx, ctx.DB(), msgID)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && msg.ConversationID != convID) {
		return false, engine.InvalidArgument("argument %q is not a message of this conversation", "messageId")
	}
	if err != nil {
		return false, err
	}
	n, err := q.ParticipantMarkRead(ctx, ctx.DB(), queries.ParticipantMarkReadParams{
		MessageID: &msg.ID, MessageAt: msg.CreatedAt, ConversationID: convID, UserID: me,
	})
	return n > 0, err
}

// unreadCounts counts, per conversation, the messages others sent after the caller's last-read
// position, up to unreadCap.
func unreadCounts(ctx *engine.QueryCtx, me int64, convs []queries.ConversationListForUserRow) (map[int64]int, error) {
	ids := make([]int64, len(convs))
	positions := make(map[int64]position, len(convs))
	var since *position // the oldest position: no unread message is older
	unreadAll := false  // some conversation has nothing read
	for i, c := range convs {
		ids[i] = c.ID
		if c.LastReadMessageID == nil || !c.LastReadAt.Valid {
			unreadAll = true
			continue
		}
		p := position{at: c.LastReadAt.Time, id: *c.LastReadMessageID}
		positions[c.ID] = p
		if since == nil || p.at.Before(since.at) {
			since = &p
		}
	}
	params := queries.MessageRecentFromOthersParams{ConversationIds: ids, UserID: me, MaxRows: unreadCap}
	if since != nil && !unreadAll {
		params.Since.Time, params.Since.Valid = since.at, true
	}
	rows, err := queries.New().MessageRecentFromOthers(ctx, ctx.DB(), params)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]int, len(convs))
	for _, m := range rows {
		p, read := positions[m.ConversationID]
		if read && !m.CreatedAt.Time.After(p.at) && (m.CreatedAt.Time.Before(p.at) || m.ID <= p.id) {
			continue
		}
		out[m.ConversationID]++
	}
	return out, nil
}
