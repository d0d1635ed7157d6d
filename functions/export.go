package functions

import (
	"net/http"
	"slices"
	"time"

	"github.com/ripplehq/ripple/engine"
)

// registerExport adds GET /http/me/export: the caller's account, conversations and their
// messages as one JSON document, for a student or parent who asks for their data. It reads
// through the same functions the app does (users:me, conversations:list, messages:list), so it
// shows exactly what the caller may see: their own conversations, membership checked on every
// page.
func registerExport(reg *engine.Registry) {
	engine.AddHTTPAction(reg, "GET /me/export", meExport, &engine.HTTPActionOpts{Timeout: 2 * time.Minute})
}

// Export is the body of GET /http/me/export.
type Export struct {
	User          *User                  `json:"user"`
	Conversations []ExportedConversation `json:"conversations"`
}

// ExportedConversation is one conversation of an Export, its messages oldest first.
type ExportedConversation struct {
	ID           string        `json:"_id"`
	Type         string        `json:"type"`
	Name         *string       `json:"name"`
	Participants []Participant `json:"participants"`
	Messages     []Message     `json:"messages"`
}

func meExport(ctx *engine.HTTPActionCtx, w http.ResponseWriter, r *http.Request) error {
	if _, err := engine.RequireAuth(ctx); err != nil {
		return err
	}
	out := Export{Conversations: []ExportedConversation{}}
	if err := ctx.RunQuery("users:me", struct{}{}, &out.User); err != nil {
		return err
	}
	if out.User == nil {
		return engine.Unauthenticated("your account no longer exists")
	}
	var convs []Conversation
	if err := ctx.RunQuery("conversations:list", struct{}{}, &convs); err != nil {
		return err
	}
	for _, c := range convs {
		messages, err := allMessages(ctx, c.ID)
		if err != nil {
			return err
		}
		out.Conversations = append(out.Conversations, ExportedConversation{ID: c.ID, Type: c.Type, Name: c.Name, Participants: c.Participants, Messages: messages})
	}
	w.Header().Set("Content-Disposition", `attachment; filename="ripple-export.json"`)
	return engine.WriteJSON(w, http.StatusOK, out)
}

// allMessages pages through a conversation with messages:list and returns its messages oldest
// first.
func allMessages(ctx *engine.HTTPActionCtx, conversationID string) ([]Message, error) {
	messages := []Message{}
	var cursor *string
	for {
		var page PaginationResult[Message]
		args := listArgs{ConversationID: conversationID, PaginationOpts: PaginationOpts{NumItems: maxPageItems, Cursor: cursor}}
		if err := ctx.RunQuery("messages:list", args, &page); err != nil {
			return nil, err
		}
		messages = append(messages, page.Page...)
		if page.IsDone || len(page.Page) == 0 {
			break
		}
		next := page.ContinueCursor
		cursor = &next
	}
	slices.Reverse(messages)
	return messages, nil
}
