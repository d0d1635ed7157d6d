package functions

import (
	"context"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/queries"
)

// A block stops a direct conversation both ways: the blocked user cannot start a conversation
// with the blocker or send into theirs, and neither can the blocker until they unblock. In a
// group a block does not stop sends (one member must not be able to silence another for the
// whole group); the blocker's app folds the blocked member's messages away, and neither can add
// the other to a group. The errors carry
// a reason (errorData.reason) so clients can say which it is without parsing text.
const (
	reasonBlockedByThem = "blocked_by_them"
	reasonBlockedByYou  = "blocked_by_you"
)

type blockArgs struct {
	UserID string `json:"userId"`
}

func registerBlocks(reg *engine.Registry) {
	engine.AddMutation(reg, "users:block", usersBlock, nil)
	engine.AddMutation(reg, "users:unblock", usersUnblock, nil)
}

// blockTarget checks the user to block or unblock: not the caller, and someone the caller shares
// a conversation with, direct or group (so user IDs cannot be probed, and blocking follows a
// real contact).
func blockTarget(ctx *engine.MutationCtx, args blockArgs) (me, other int64, err error) {
	me, err = callerID(ctx)
	if err != nil {
		return 0, 0, err
	}
	other, err = parseID("userId", args.UserID)
	if err != nil {
		return 0, 0, err
	}
	if other == me {
		return 0, 0, engine.InvalidArgument("you cannot block yourself")
	}
	shared, err := queries.New().ParticipantShared(ctx, ctx.DB(), queries.ParticipantSharedParams{A: me, B: other})
	if err != nil {
		return 0, 0, err
	}
	if !shared {
		return 0, 0, engine.Forbidden("you can only block someone you have a conversation with")
	}
	return me, other, nil
}

// usersBlock blocks a user the caller has a conversation with. Blocking twice is one block.
func usersBlock(ctx *engine.MutationCtx, args blockArgs) (*struct{}, error) {
	me, other, err := blockTarget(ctx, args)
	if err != nil {
		return nil, err
	}
	return nil, queries.New().BlockInsert(ctx, ctx.DB(), queries.BlockInsertParams{BlockerID: me, BlockedID: other})
}

// usersUnblock lifts the caller's block of a user, if there is one.
func usersUnblock(ctx *engine.MutationCtx, args blockArgs) (*struct{}, error) {
	me, other, err := blockTarget(ctx, args)
	if err != nil {
		return nil, err
	}
	return nil, queries.New().BlockDelete(ctx, ctx.DB(), queries.BlockDeleteParams{BlockerID: me, BlockedID: other})
}

// refuseIfBlocked is FORBIDDEN, with the reason, when a block stands between the two users.
func refuseIfBlocked(ctx context.Context, db engine.DBTX, me, other int64) error {
	blocks, err := queries.New().BlockBetween(ctx, db, queries.BlockBetweenParams{A: me, B: other})
	if err != nil {
		return err
	}
	blockers := make([]int64, len(blocks))
	for i, b := range blocks {
		blockers[i] = b.BlockerID
	}
	return blockError(me, blockers)
}

// blockError says which block stands, the caller's own first (they can lift that one).
func blockError(me int64, blockers []int64) error {
	for _, b := range blockers {
		if b == me {
			return withReason(engine.Forbidden("you blocked this person; unblock them to send"), reasonBlockedByYou)
		}
	}
	if len(blockers) > 0 {
		return withReason(engine.Forbidden("this person is not accepting messages from you"), reasonBlockedByThem)
	}
	return nil
}
