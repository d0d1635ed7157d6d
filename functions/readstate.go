package functions

import (
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
	// One statement: the membership check, the message's conversation and the move forward.
	r, err := queries.New().ReadStateMark(ctx, ctx.DB(), queries.ReadStateMarkParams{
		ConversationID: convID, UserID: me, MessageID: msgID,
	})
	switch {
	case err != nil:
		return false, err
	case !r.Participant: // checked first: a non-member learns nothing about the message
		return false, notParticipant()
	case !r.MessageFound:
		return false, engine.InvalidArgument("argument %q is not a message of this conversation", "messageId")
	}
	return r.Advanced > 0, nil
}
