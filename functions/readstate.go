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
	n, err := q.ReadStateAdvance(ctx, ctx.DB(), queries.ReadStateAdvanceParams{
		MessageID: msg.ID, MessageAt: msg.CreatedAt, ConversationID: convID, UserIds: []int64{me},
	})
	return n > 0, err
}
