package functions

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/queries"
)

// MaxBodyLength is the longest message body, in characters.
const MaxBodyLength = 4000

func registerMessages(reg *engine.Registry) {
	// Shared: a page is the same for every member, so a new message re-runs it once for all of
	// them; each member's membership check is kept until their membership changes.
	engine.AddSharedQuery(reg, "messages:list", engine.SharedQuery[listArgs, *PaginationResult[Message]]{
		Access: messagesListAccess, Result: messagesList,
	}, nil)
	engine.AddMutation(reg, "messages:send", messagesSend, nil)
}

// Message is a message as clients see it.
type Message struct {
	ID             string  `json:"_id"`
	CreationTime   float64 `json:"_creationTime"`
	ConversationID string  `json:"conversationId"`
	SenderID       string  `json:"senderId"`
	Body           string  `json:"body"`
	// Kind is "text" (written by its sender) or "system" (a membership change in a group,
	// written by the function that made it; never embedded or searched).
	Kind string `json:"kind"`
}

func toMessage(m queries.Message) Message {
	return Message{ID: formatID(m.ID), CreationTime: millis(m.CreatedAt), ConversationID: formatID(m.ConversationID), SenderID: formatID(m.SenderID), Body: m.Body, Kind: m.Kind}
}

type sendArgs struct {
	ConversationID string `json:"conversationId"`
	Body           string `json:"body"`
}

// messagesSend stores a message and, in the same transaction, queues it for the embedding sweep
// (last activity and embedding), so the send stays fast and the work is never lost.
func messagesSend(ctx *engine.MutationCtx, args sendArgs) (string, error) {
	me, err := callerID(ctx)
	if err != nil {
		return "", err
	}
	convID, err := parseID("conversationId", args.ConversationID)
	if err != nil {
		return "", err
	}
	body := strings.TrimSpace(args.Body)
	if body == "" {
		return "", engine.InvalidArgument("argument %q must not be empty", "body")
	}
	if strings.ContainsRune(body, 0) {
		return "", engine.InvalidArgument("argument %q must not contain NUL characters", "body")
	}
	if n := utf8.RuneCountInString(body); n > MaxBodyLength {
		e := withReason(engine.InvalidArgument("argument %q is %d characters; the limit is %d", "body", n, MaxBodyLength), "too_long")
		e.Data["limit"], e.Data["length"] = MaxBodyLength, n
		return "", e
	}
	// One statement checks membership and blocks and, when both pass, stores and queues the
	// message; the errors keep their order: membership, then blocks.
	res, err := queries.New().MessageSend(ctx, ctx.DB(), queries.MessageSendParams{SenderID: me, ConversationID: convID, Body: body})
	if err != nil {
		return "", err
	}
	if !res.Participant {
		return "", notParticipant()
	}
	if err := blockError(me, res.Blockers); err != nil {
		return "", err
	}
	if res.MessageID == nil { // cannot happen: a participant with no block stores the message
		return "", errors.New("messages:send stored nothing")
	}
	// The embedding sweep (messages:embedDue) takes it from here: queueing the message is all a
	// send does, so the embedding work never runs at the moment the message is delivered, and
	// the messages of a second share the sweep's transactions and provider calls.
	return formatID(*res.MessageID), nil
}

// PaginationOpts and PaginationResult are the engine's (Convex's shapes; docs/protocol.md,
// Pagination).
type (
	PaginationOpts          = engine.PaginationOpts
	PaginationResult[T any] = engine.PaginationResult[T]
)

type listArgs struct {
	ConversationID string         `json:"conversationId"`
	PaginationOpts PaginationOpts `json:"paginationOpts"`
}

// Cursors are positions in (created_at DESC, id DESC) order. endOfList marks "everything to
// the oldest message".
const endOfList = "end"

type position struct {
	at time.Time
	id int64
}

func encodeCursor(p position) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(p.at.UnixMicro(), 10) + ":" + strconv.FormatInt(p.id, 10)))
}

// A cursor's time lies in years 1 to 9999.
var (
	minCursorMicros = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxCursorMicros = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro() - 1
)

func decodeCursor(field, s string) (*position, error) {
	if s == endOfList {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	micros, id, ok := strings.Cut(string(raw), ":")
	if err != nil || !ok {
		return nil, engine.InvalidArgument("argument %q is not a cursor", field)
	}
	us, err1 := strconv.ParseInt(micros, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if err1 != nil || err2 != nil || us < minCursorMicros || us > maxCursorMicros {
		// Outside these years no message was written, and Postgres refuses some of them (an
		// internal error instead of the caller's mistake).
		return nil, engine.InvalidArgument("argument %q is not a cursor", field)
	}
	return &position{at: time.UnixMicro(us).UTC(), id: n}, nil
}

const maxPageItems = 200

// messagesListAccess admits the conversation's participants, after checking the arguments.
func messagesListAccess(ctx *engine.QueryCtx, args listArgs) error {
	me, err := callerID(ctx)
	if err != nil {
		return err
	}
	convID, err := parseID("conversationId", args.ConversationID)
	if err != nil {
		return err
	}
	if n := args.PaginationOpts.NumItems; n < 1 || n > maxPageItems {
		return engine.InvalidArgument("argument %q must be between 1 and %d", "paginationOpts.numItems", maxPageItems)
	}
	return requireParticipant(ctx, ctx.DB(), convID, me)
}

// messagesList pages through a conversation newest first, for every participant alike
// (messagesListAccess admits them). A first page without endCursor is pinned through the
// subscription's journal: its end is recorded on the first run and reused by every re-run, so
// new messages grow the page instead of pushing older ones out of view.
func messagesList(ctx *engine.QueryCtx, args listArgs) (*PaginationResult[Message], error) {
	convID, err := parseID("conversationId", args.ConversationID)
	if err != nil {
		return nil, err
	}
	opts := args.PaginationOpts

	params := queries.MessagePageParams{ConversationID: convID}
	if opts.Cursor != nil {
		start, err := decodeCursor("paginationOpts.cursor", *opts.Cursor)
		if err != nil {
			return nil, err
		}
		if start == nil { // the cursor is the end: nothing is older
			return &PaginationResult[Message]{Page: []Message{}, IsDone: true, ContinueCursor: endOfList}, nil
		}
		params.BeforeAt = pgtype.Timestamptz{Time: start.at, Valid: true}
		params.BeforeID = &start.id
	}
	endCursor := opts.EndCursor
	if endCursor == nil && ctx.Journal() != "" {
		j := ctx.Journal()
		endCursor = &j
	}

	q := queries.New()
	if endCursor != nil {
		// A pinned page: everything in (cursor, endCursor], however many that is now.
		end, err := decodeCursor("paginationOpts.endCursor", *endCursor)
		if err != nil {
			return nil, err
		}
		if end != nil {
			params.UntilAt = pgtype.Timestamptz{Time: end.at, Valid: true}
			params.UntilID = &end.id
		}
		params.MaxRows = 10_000
		rows, err := q.MessagePage(ctx, ctx.DB(), params)
		if err != nil {
			return nil, err
		}
		res := &PaginationResult[Message]{Page: make([]Message, len(rows)), IsDone: end == nil, ContinueCursor: *endCursor}
		for i, m := range rows {
			res.Page[i] = toMessage(m)
		}
		if len(rows) > 2*opts.NumItems {
			split := encodeCursor(position{at: rows[opts.NumItems-1].CreatedAt.Time, id: rows[opts.NumItems-1].ID})
			status := "SplitRecommended"
			res.SplitCursor, res.PageStatus = &split, &status
		}
		if opts.EndCursor == nil {
			ctx.SetJournal(*endCursor)
		}
		return res, nil
	}

	params.MaxRows = int32(opts.NumItems + 1)
	rows, err := q.MessagePage(ctx, ctx.DB(), params)
	if err != nil {
		return nil, err
	}
	res := &PaginationResult[Message]{IsDone: len(rows) <= opts.NumItems}
	if !res.IsDone {
		rows = rows[:opts.NumItems]
	}
	res.Page = make([]Message, len(rows))
	for i, m := range rows {
		res.Page[i] = toMessage(m)
	}
	if res.IsDone {
		res.ContinueCursor = endOfList
	} else {
		last := rows[len(rows)-1]
		res.ContinueCursor = encodeCursor(position{at: last.CreatedAt.Time, id: last.ID})
	}
	ctx.SetJournal(res.ContinueCursor)
	return res, nil
}
