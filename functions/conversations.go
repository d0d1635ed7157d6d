package functions

import (
	"time"

	"context"
	"errors"
	"net/mail"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/queries"
)

func registerConversations(reg *engine.Registry) {
	// Each call tells whether an email has an account: bounded per user, generously enough for a
	// teacher starting conversations with a class.
	engine.AddMutation(reg, "conversations:getOrCreateDirect", conversationsGetOrCreateDirect,
		&engine.FunctionOpts{RateLimit: &engine.RateLimit{Every: 30 * time.Second, Burst: 40}})
	engine.AddQuery(reg, "conversations:list", conversationsList, nil)
	engine.AddMutation(reg, "conversations:markRead", conversationsMarkRead, nil)
	registerGroups(reg)
}

type getOrCreateDirectArgs struct {
	Email string `json:"email"`
}

// conversationsGetOrCreateDirect returns the direct conversation between the caller and the
// user with the email, creating it once. Both sides get the same ID; concurrent calls race on
// the unique (low, high) pair and the loser retries (SERIALIZABLE) and finds the winner's row.
func conversationsGetOrCreateDirect(ctx *engine.MutationCtx, args getOrCreateDirectArgs) (string, error) {
	me, err := callerID(ctx)
	if err != nil {
		return "", err
	}
	email := strings.ToLower(strings.TrimSpace(args.Email))
	if _, err := mail.ParseAddress(email); err != nil || len(email) > 320 {
		return "", withReason(engine.InvalidArgument("argument %q is not an email address", "email"), "bad_email")
	}
	q := queries.New()
	other, err := q.UserGetByEmail(ctx, ctx.DB(), email)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", withReason(engine.NotFound("no user has the email %s", email), "unknown_email")
	}
	if err != nil {
		return "", err
	}
	if other.ID == me {
		return "", withReason(engine.InvalidArgument("you cannot start a conversation with yourself"), "self")
	}
	if err := refuseIfBlocked(ctx, ctx.DB(), me, other.ID); err != nil {
		return "", err
	}
	low, high := min(me, other.ID), max(me, other.ID)
	pair := queries.ConversationDirectGetParams{DirectUserLow: &low, DirectUserHigh: &high}
	id, err := q.ConversationDirectGet(ctx, ctx.DB(), pair)
	if err == nil {
		return formatID(id), nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", err
	}
	id, err = q.ConversationDirectInsert(ctx, ctx.DB(), queries.ConversationDirectInsertParams{DirectUserLow: &low, DirectUserHigh: &high})
	if err != nil {
		// A foreign-key violation: the caller's account was deleted while its token lives on.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" {
			return "", engine.Unauthenticated("your account no longer exists")
		}
		// ErrNoRows here means another transaction inserted the pair; under SERIALIZABLE that
		// surfaces as a serialization failure, which the engine retries.
		return "", err
	}
	for _, uid := range []int64{low, high} {
		if err := q.ParticipantInsert(ctx, ctx.DB(), queries.ParticipantInsertParams{ConversationID: id, UserID: uid}); err != nil {
			return "", err
		}
	}
	return formatID(id), nil
}

// Participant is a conversation member as clients see it.
type Participant struct {
	ID    string `json:"_id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	// Admin: a group admin (adds, removes, renames). Always false in a direct conversation.
	Admin bool `json:"admin,omitempty"`
}

// LastMessage summarises a conversation's newest message.
type LastMessage struct {
	Body         string  `json:"body"`
	SenderID     string  `json:"senderId"`
	CreationTime float64 `json:"_creationTime"`
	// Kind is the message's kind (Message.Kind).
	Kind string `json:"kind"`
}

// Conversation is one entry of conversations:list.
type Conversation struct {
	ID   string `json:"_id"`
	Type string `json:"type"`
	// Name is a group's name; null for a direct conversation.
	Name *string `json:"name"`
	// Participants are the members in joining order (for a group, the member list).
	Participants    []Participant `json:"participants"`
	LastMessageTime *float64      `json:"lastMessageTime"`
	LastMessage     *LastMessage  `json:"lastMessage"`
	// UnreadCount is how many messages others sent after the caller's last-read position, up
	// to 100 (shown as "99+" past 99).
	UnreadCount int `json:"unreadCount"`
	// LastReadMessageID is the caller's last-read position, or null when nothing was read.
	LastReadMessageID *string `json:"lastReadMessageId"`
	// BlockedByMe lists the other participants the caller has blocked.
	BlockedByMe []string `json:"blockedByMe"`
}

// conversationsList lists the caller's conversations, most recent activity first. The last
// message comes from the same snapshot as any message list the client shows, so the two never
// disagree; last activity is that message's time (or the stored last_message_time, which older
// versions wrote, when it is newer).
func conversationsList(ctx *engine.QueryCtx, _ struct{}) ([]Conversation, error) {
	me, err := callerID(ctx)
	if err != nil {
		return nil, err
	}
	// One statement: a row per participant of each of the caller's conversations, ordered by
	// conversation, the conversation's own columns repeated on each.
	rows, err := queries.New().ConversationSummaryListForUser(ctx, ctx.DB(),
		queries.ConversationSummaryListForUserParams{UserID: me, MaxUnread: unreadCap})
	if err != nil {
		return nil, err
	}
	type sortable struct {
		conv     Conversation
		activity pgtype.Timestamptz
		id       int64
	}
	var list []*sortable
	for _, r := range rows {
		var cur *sortable
		if n := len(list); n > 0 && list[n-1].id == r.ConversationID {
			cur = list[n-1]
		} else {
			cur = &sortable{id: r.ConversationID}
			cur.conv = conversationFromRow(r, &cur.activity)
			list = append(list, cur)
		}
		id := formatID(r.ParticipantID)
		cur.conv.Participants = append(cur.conv.Participants, Participant{ID: id, Name: r.ParticipantName, Email: r.ParticipantEmail, Admin: r.ParticipantAdmin})
		if r.BlockedByMe {
			cur.conv.BlockedByMe = append(cur.conv.BlockedByMe, id)
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if !list[i].activity.Time.Equal(list[j].activity.Time) {
			return list[i].activity.Time.After(list[j].activity.Time)
		}
		return list[i].id > list[j].id
	})
	out := make([]Conversation, 0, len(list))
	for _, r := range list {
		out = append(out, r.conv)
	}
	return out, nil
}

// conversationFromRow is a conversation of conversations:list without its participants, from
// the first of its rows, and its last activity: the newest message's time, or the stored
// last_message_time (which older versions wrote) when it is newer, or else its creation.
func conversationFromRow(r queries.ConversationSummaryListForUserRow, activity *pgtype.Timestamptz) Conversation {
	conv := Conversation{ID: formatID(r.ConversationID), Type: r.Type, Name: r.Name, Participants: []Participant{}, BlockedByMe: []string{},
		UnreadCount: int(r.Unread)}
	if r.LastReadMessageID != nil {
		id := formatID(*r.LastReadMessageID)
		conv.LastReadMessageID = &id
	}
	*activity = r.LastMessageTime
	if r.LastCreatedAt.Valid {
		conv.LastMessage = &LastMessage{Body: r.LastBody, SenderID: formatID(r.LastSenderID), CreationTime: millis(r.LastCreatedAt), Kind: r.LastKind}
		if !activity.Valid || r.LastCreatedAt.Time.After(activity.Time) {
			*activity = r.LastCreatedAt
		}
	}
	if activity.Valid {
		t := millis(*activity)
		conv.LastMessageTime = &t
	} else {
		*activity = r.CreatedAt
	}
	return conv
}

// requireParticipant gives FORBIDDEN both for a conversation the caller is not in and for one
// that does not exist, so a caller cannot probe for conversations.
func requireParticipant(ctx context.Context, db engine.DBTX, conversationID, userID int64) error {
	_, err := queries.New().ParticipantGet(ctx, db, queries.ParticipantGetParams{UserID: userID, ConversationID: conversationID})
	if errors.Is(err, pgx.ErrNoRows) {
		return notParticipant()
	}
	return err
}

func notParticipant() error {
	return engine.Forbidden("you are not a participant of this conversation")
}

// withReason attaches a reason (errorData.reason) that clients turn into their own words.
func withReason(e *engine.Error, reason string) *engine.Error {
	if e.Data == nil {
		e.Data = map[string]any{}
	}
	e.Data["reason"] = reason
	return e
}
