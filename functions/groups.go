package functions

import (
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/queries"
)

// Group limits.
const (
	// MaxGroupMembers is the most members a group has, its creator included.
	MaxGroupMembers = 200
	// MaxGroupNameLength is the longest group name, in characters.
	MaxGroupNameLength = 100
	// GroupsPerHour is how many groups one user may create in an hour (a token bucket: all at
	// once, then one more every hour/GroupsPerHour). Refused calls count too: each one tells
	// whether its emails have accounts.
	GroupsPerHour = 20
	// systemLineNames is how many names a system line spells out before "and N others".
	systemLineNames = 5
)

// Reasons (errorData.reason) of the group functions' errors.
const (
	reasonNotGroup        = "not_group"
	reasonNotAdmin        = "not_admin"
	reasonMembersRefused  = "members_refused"
	reasonTooManyMembers  = "too_many_members"
	reasonBadName         = "bad_name"
	reasonNotMember       = "not_member"
	reasonTooFewMembers   = "too_few_members"
	reasonUnknownEmail    = "unknown_email"
	reasonBadEmail        = "bad_email"
	reasonMembersRequired = "no_members"
)

func registerGroups(reg *engine.Registry) {
	engine.AddMutation(reg, "conversations:createGroup", conversationsCreateGroup,
		&engine.FunctionOpts{RateLimit: &engine.RateLimit{Every: time.Hour / GroupsPerHour, Burst: GroupsPerHour}})
	// Like getOrCreateDirect, each call tells whether emails have accounts.
	engine.AddMutation(reg, "conversations:addMembers", conversationsAddMembers,
		&engine.FunctionOpts{RateLimit: &engine.RateLimit{Every: 30 * time.Second, Burst: 40}})
	engine.AddMutation(reg, "conversations:removeMember", conversationsRemoveMember, nil)
	engine.AddMutation(reg, "conversations:rename", conversationsRename, nil)
}

type createGroupArgs struct {
	Name   string   `json:"name"`
	Emails []string `json:"emails"`
}

type addMembersArgs struct {
	ConversationID string   `json:"conversationId"`
	Emails         []string `json:"emails"`
}

type removeMemberArgs struct {
	ConversationID string `json:"conversationId"`
	UserID         string `json:"userId"`
}

type renameArgs struct {
	ConversationID string `json:"conversationId"`
	Name           string `json:"name"`
}

// RefusedMember is one address a group function could not add, and why: unknown_email,
// bad_email, blocked_by_you or blocked_by_them. They come in errorData.members of a
// members_refused error, so the app can mark each address.
type RefusedMember struct {
	Email  string `json:"email"`
	Reason string `json:"reason"`
}

// groupName checks and trims a group name.
func groupName(name string) (string, error) {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	bad := n == 0 || n > MaxGroupNameLength || !utf8.ValidString(name) ||
		strings.IndexFunc(name, func(r rune) bool { return unicode.IsControl(r) }) >= 0
	if bad {
		e := withReason(engine.InvalidArgument("argument %q must be 1 to %d characters, without control characters", "name", MaxGroupNameLength), reasonBadName)
		e.Data["limit"] = MaxGroupNameLength
		return "", e
	}
	return name, nil
}

// resolveMembers turns emails into users the caller may add: known, valid, no block between
// them and the caller either way (a block must not be worked around through a group). The
// caller's own address is skipped and duplicates count once. Every refused address is
// reported at once.
func resolveMembers(ctx *engine.MutationCtx, me int64, emails []string) ([]queries.UserListByEmailsRow, error) {
	if len(emails) == 0 {
		return nil, withReason(engine.InvalidArgument("argument %q must name at least one person", "emails"), reasonMembersRequired)
	}
	if len(emails) > MaxGroupMembers {
		return nil, tooManyMembers(len(emails))
	}
	var refused []RefusedMember
	var want []string
	for _, raw := range emails {
		email := strings.ToLower(strings.TrimSpace(raw))
		if _, err := mail.ParseAddress(email); err != nil || len(email) > 320 {
			refused = append(refused, RefusedMember{Email: truncate(raw, 320), Reason: reasonBadEmail})
			continue
		}
		if !slices.Contains(want, email) {
			want = append(want, email)
		}
	}
	q := queries.New()
	users, err := q.UserListByEmails(ctx, ctx.DB(), want)
	if err != nil {
		return nil, err
	}
	byEmail := map[string]queries.UserListByEmailsRow{}
	for _, u := range users {
		byEmail[strings.ToLower(u.Email)] = u
	}
	var out []queries.UserListByEmailsRow
	var ids []int64
	for _, email := range want {
		u, ok := byEmail[email]
		switch {
		case !ok:
			refused = append(refused, RefusedMember{Email: email, Reason: reasonUnknownEmail})
		case u.ID != me:
			out = append(out, u)
			ids = append(ids, u.ID)
		}
	}
	blocks, err := q.BlockListAround(ctx, ctx.DB(), queries.BlockListAroundParams{UserID: me, Others: ids})
	if err != nil {
		return nil, err
	}
	blockedBy := map[int64]string{}
	for _, b := range blocks {
		if b.BlockerID == me {
			blockedBy[b.BlockedID] = reasonBlockedByYou
		} else if blockedBy[b.BlockerID] == "" {
			blockedBy[b.BlockerID] = reasonBlockedByThem
		}
	}
	kept := out[:0]
	for _, u := range out {
		if r := blockedBy[u.ID]; r != "" {
			refused = append(refused, RefusedMember{Email: strings.ToLower(u.Email), Reason: r})
			continue
		}
		kept = append(kept, u)
	}
	if len(refused) > 0 {
		e := withReason(engine.InvalidArgument("%d of the addresses cannot be added", len(refused)), reasonMembersRefused)
		e.Data["members"] = refused
		return nil, e
	}
	return kept, nil
}

func tooManyMembers(n int) error {
	e := withReason(engine.InvalidArgument("a group has at most %d members; this would make %d", MaxGroupMembers, n), reasonTooManyMembers)
	e.Data["limit"], e.Data["count"] = MaxGroupMembers, n
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// conversationsCreateGroup creates a group named name with the caller (its first admin) and the
// people with the emails: 2 to MaxGroupMembers members in all. Every address that cannot be
// added is reported at once (members_refused); nothing is created then.
func conversationsCreateGroup(ctx *engine.MutationCtx, args createGroupArgs) (string, error) {
	me, err := callerID(ctx)
	if err != nil {
		return "", err
	}
	name, err := groupName(args.Name)
	if err != nil {
		return "", err
	}
	members, err := resolveMembers(ctx, me, args.Emails)
	if err != nil {
		return "", err
	}
	if len(members) == 0 {
		return "", withReason(engine.InvalidArgument("a group needs at least one other member"), reasonTooFewMembers)
	}
	if n := len(members) + 1; n > MaxGroupMembers {
		return "", tooManyMembers(n)
	}
	q := queries.New()
	creator, err := q.UserGet(ctx, ctx.DB(), me)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", engine.Unauthenticated("your account no longer exists")
	}
	if err != nil {
		return "", err
	}
	id, err := q.ConversationGroupInsert(ctx, ctx.DB(), &name)
	if err != nil {
		return "", err
	}
	if _, err := q.ParticipantInsertMany(ctx, ctx.DB(), queries.ParticipantInsertManyParams{ConversationID: id, UserIds: []int64{me}, Admin: true}); err != nil {
		return "", err
	}
	ids := userIDs(members)
	if _, err := q.ParticipantInsertMany(ctx, ctx.DB(), queries.ParticipantInsertManyParams{ConversationID: id, UserIds: ids, Admin: false}); err != nil {
		return "", err
	}
	line := fmt.Sprintf("%s created the group “%s” with %s", creator.Name, name, nameList(members))
	if err := systemLine(ctx, id, me, line, append(ids, me)); err != nil {
		return "", err
	}
	return formatID(id), nil
}

// conversationsAddMembers adds people to a group (admins only). Those already in it are left
// alone; every address that cannot be added is reported at once and none is added then.
func conversationsAddMembers(ctx *engine.MutationCtx, args addMembersArgs) ([]string, error) {
	me, convID, err := groupAdmin(ctx, args.ConversationID)
	if err != nil {
		return nil, err
	}
	members, err := resolveMembers(ctx, me, args.Emails)
	if err != nil {
		return nil, err
	}
	q := queries.New()
	added, err := q.ParticipantInsertMany(ctx, ctx.DB(), queries.ParticipantInsertManyParams{ConversationID: convID, UserIds: userIDs(members), Admin: false})
	if err != nil {
		return nil, err
	}
	out := make([]string, len(added))
	for i, id := range added {
		out[i] = formatID(id)
	}
	if len(added) == 0 {
		return out, nil
	}
	count, err := q.ParticipantCount(ctx, ctx.DB(), convID)
	if err != nil {
		return nil, err
	}
	if count.Members > MaxGroupMembers {
		// The transaction rolls back: nothing was added.
		return nil, tooManyMembers(int(count.Members))
	}
	var newcomers []queries.UserListByEmailsRow
	for _, u := range members {
		if slices.Contains(added, u.ID) {
			newcomers = append(newcomers, u)
		}
	}
	actor, err := q.UserGet(ctx, ctx.DB(), me)
	if err != nil {
		return nil, err
	}
	return out, systemLine(ctx, convID, me, fmt.Sprintf("%s added %s", actor.Name, nameList(newcomers)), added)
}

// conversationsRemoveMember removes a member from a group: an admin may remove anyone, any
// member themselves (leaving). The removed member's subscriptions lose access in the same
// transition (their membership row is what messages:list's access check reads), and they keep
// no access to the history. A group left without an admin gets its longest-standing member as
// one; a group left empty is deleted.
func conversationsRemoveMember(ctx *engine.MutationCtx, args removeMemberArgs) (*struct{}, error) {
	me, err := callerID(ctx)
	if err != nil {
		return nil, err
	}
	convID, err := parseID("conversationId", args.ConversationID)
	if err != nil {
		return nil, err
	}
	target, err := parseID("userId", args.UserID)
	if err != nil {
		return nil, err
	}
	self, err := membership(ctx, convID, me)
	if err != nil {
		return nil, err
	}
	conv, err := requireGroup(ctx, convID)
	if err != nil {
		return nil, err
	}
	if target != me && !self.Admin {
		return nil, notAdmin()
	}
	q := queries.New()
	n, err := q.ParticipantDelete(ctx, ctx.DB(), queries.ParticipantDeleteParams{ConversationID: convID, UserID: target})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, withReason(engine.NotFound("that person is not a member of this group"), reasonNotMember)
	}
	count, err := q.ParticipantCount(ctx, ctx.DB(), convID)
	if err != nil {
		return nil, err
	}
	if count.Members == 0 {
		return nil, q.ConversationDelete(ctx, ctx.DB(), conv.ID)
	}
	if count.Admins == 0 {
		if err := q.ParticipantPromoteEldest(ctx, ctx.DB(), convID); err != nil {
			return nil, err
		}
	}
	actor, err := q.UserGet(ctx, ctx.DB(), me)
	if err != nil {
		return nil, err
	}
	line := actor.Name + " left"
	if target != me {
		removed, err := q.UserGet(ctx, ctx.DB(), target)
		if err != nil {
			return nil, err
		}
		line = fmt.Sprintf("%s removed %s", actor.Name, removed.Name)
	}
	return nil, systemLine(ctx, convID, me, line, nil)
}

// conversationsRename renames a group (admins only).
func conversationsRename(ctx *engine.MutationCtx, args renameArgs) (*struct{}, error) {
	me, convID, err := groupAdmin(ctx, args.ConversationID)
	if err != nil {
		return nil, err
	}
	name, err := groupName(args.Name)
	if err != nil {
		return nil, err
	}
	q := queries.New()
	if err := q.ConversationRename(ctx, ctx.DB(), queries.ConversationRenameParams{Name: &name, ID: convID}); err != nil {
		return nil, err
	}
	actor, err := q.UserGet(ctx, ctx.DB(), me)
	if err != nil {
		return nil, err
	}
	return nil, systemLine(ctx, convID, me, fmt.Sprintf("%s renamed the group to “%s”", actor.Name, name), nil)
}

// membership is the caller's participation, FORBIDDEN alike for a conversation they are not in
// and one that does not exist.
func membership(ctx *engine.MutationCtx, convID, me int64) (queries.ParticipantGetRow, error) {
	p, err := queries.New().ParticipantGet(ctx, ctx.DB(), queries.ParticipantGetParams{UserID: me, ConversationID: convID})
	if errors.Is(err, pgx.ErrNoRows) {
		return p, notParticipant()
	}
	return p, err
}

func requireGroup(ctx *engine.MutationCtx, convID int64) (queries.ConversationGetRow, error) {
	conv, err := queries.New().ConversationGet(ctx, ctx.DB(), convID)
	if err != nil {
		return conv, err
	}
	if conv.Type != "group" {
		return conv, withReason(engine.InvalidArgument("this is not a group"), reasonNotGroup)
	}
	return conv, nil
}

// groupAdmin checks identity, the conversation ID, membership (first), that it is a group and
// that the caller is one of its admins.
func groupAdmin(ctx *engine.MutationCtx, conversationID string) (me, convID int64, err error) {
	if me, err = callerID(ctx); err != nil {
		return 0, 0, err
	}
	if convID, err = parseID("conversationId", conversationID); err != nil {
		return 0, 0, err
	}
	p, err := membership(ctx, convID, me)
	if err != nil {
		return 0, 0, err
	}
	if _, err := requireGroup(ctx, convID); err != nil {
		return 0, 0, err
	}
	if !p.Admin {
		return 0, 0, notAdmin()
	}
	return me, convID, nil
}

func notAdmin() error {
	return withReason(engine.Forbidden("only the group's admins can do this"), reasonNotAdmin)
}

// systemLine writes a membership change into the thread, sent by the member who made it, and
// moves readers' last-read positions to it (those who just joined start there instead of with
// the whole history unread).
func systemLine(ctx *engine.MutationCtx, convID, actor int64, body string, readers []int64) error {
	q := queries.New()
	body = truncate(body, 3000) // a name list is bounded by systemLineNames; this keeps the column's check
	msg, err := q.MessageSystemInsert(ctx, ctx.DB(), queries.MessageSystemInsertParams{SenderID: actor, ConversationID: convID, Body: body})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" {
			return engine.Unauthenticated("your account no longer exists")
		}
		return err
	}
	if len(readers) == 0 {
		readers = []int64{actor}
	}
	_, err = q.ReadStateAdvance(ctx, ctx.DB(), queries.ReadStateAdvanceParams{
		MessageID: msg.ID, MessageAt: msg.CreatedAt, ConversationID: convID, UserIds: readers,
	})
	return err
}

// nameList spells out up to systemLineNames names, then "and N others".
func nameList(users []queries.UserListByEmailsRow) string {
	var names []string
	for i, u := range users {
		if i == systemLineNames {
			names = append(names, fmt.Sprintf("%d others", len(users)-i))
			break
		}
		names = append(names, u.Name)
	}
	switch len(names) {
	case 0:
		return "nobody"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func userIDs(users []queries.UserListByEmailsRow) []int64 {
	ids := make([]int64, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	return ids
}
