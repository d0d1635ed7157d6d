package questions

import (
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/examples/questions/queries"
)

// Config configures the board's functions.
type Config struct {
	// ArchiveAfter is how long an answered question stays on the board. Default 1 h.
	ArchiveAfter time.Duration
}

// WithDefaults returns a copy with every unset field at its default.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.ArchiveAfter == 0 {
		out.ArchiveAfter = time.Hour
	}
	return &out
}

func (c *Config) validate() error {
	if c.ArchiveAfter < 0 {
		return errors.New("questions: ArchiveAfter must not be negative")
	}
	return nil
}

// Limits on what a client may send.
const (
	MaxBodyLength = 500 // characters
	maxPageItems  = 100
	// maxPinnedRows bounds a pinned page (one kept live through its journal).
	maxPinnedRows = 1000
	maxExportRows = 10_000
)

// Register adds the board's functions, its HTTP action and the read sets of its SQL to reg.
func Register(reg *engine.Registry, cfg *Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	reg.AddReadSpecs(queries.ReadSpecs)
	b := &board{cfg: cfg, q: queries.New()}
	engine.AddQuery(reg, "users:me", b.me, nil)
	engine.AddMutation(reg, "users:makeTeacher", b.makeTeacher, &engine.FunctionOpts{Internal: true})
	engine.AddQuery(reg, "questions:list", b.list, nil)
	engine.AddQuery(reg, "questions:openCount", b.openCount, nil)
	engine.AddQuery(reg, "questions:export", b.export, &engine.FunctionOpts{Internal: true})
	engine.AddMutation(reg, "questions:ask", b.ask, nil)
	engine.AddMutation(reg, "questions:upvote", b.upvote, nil)
	engine.AddMutation(reg, "questions:markAnswered", b.markAnswered, nil)
	engine.AddMutation(reg, "questions:archive", b.archive, &engine.FunctionOpts{Internal: true})
	engine.AddHTTPAction(reg, "GET /questions.csv", b.exportCSV, nil)
	return nil
}

type board struct {
	cfg *Config
	q   *queries.Queries
}

// Me is the signed-in user.
type Me struct {
	ID        string `json:"_id"`
	Name      string `json:"name"`
	IsTeacher bool   `json:"isTeacher"`
}

// callerID is the signed-in user's id; every function starts with it.
func callerID(ctx engine.IdentityHolder) (int64, error) {
	s, err := engine.RequireAuth(ctx)
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, engine.Unauthenticated("not a user of this board")
	}
	return id, nil
}

func (b *board) me(ctx *engine.QueryCtx, _ struct{}) (*Me, error) {
	me, err := callerID(ctx)
	if err != nil {
		return nil, err
	}
	u, err := b.q.UserGet(ctx, ctx.DB(), me)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, engine.Unauthenticated("not a user of this board")
	}
	if err != nil {
		return nil, err
	}
	return &Me{ID: strconv.FormatInt(u.ID, 10), Name: u.Name, IsTeacher: u.IsTeacher}, nil
}

type makeTeacherArgs struct {
	Email string `json:"email"`
}

// makeTeacher is for operators (an admin key): `POST /api/mutation` with
// {"path": "users:makeTeacher", "args": {"email": ...}}.
func (b *board) makeTeacher(ctx *engine.MutationCtx, args makeTeacherArgs) (bool, error) {
	if !ctx.Identity().Admin {
		return false, engine.Forbidden("only an operator can name teachers")
	}
	n, err := b.q.UserSetTeacher(ctx, ctx.DB(), args.Email)
	return n > 0, err
}

// Question is a question as clients see it.
type Question struct {
	ID           string  `json:"_id"`
	CreationTime float64 `json:"_creationTime"`
	Body         string  `json:"body"`
	Votes        int     `json:"votes"`
	Answered     bool    `json:"answered"`
	// Mine and Voted are the caller's: their own question, and whether they upvoted it.
	Mine  bool `json:"mine"`
	Voted bool `json:"voted"`
}

type listArgs struct {
	PaginationOpts engine.PaginationOpts `json:"paginationOpts"`
}

func (a *listArgs) Validate() error {
	if n := a.PaginationOpts.NumItems; n < 1 || n > maxPageItems {
		return engine.InvalidArgument("paginationOpts.numItems must be between 1 and %d", maxPageItems)
	}
	return nil
}

// Cursors are positions in the board's (votes DESC, id DESC) order, "<votes>:<id>" in
// base64; endOfList is after the last question.
const endOfList = "end"

type position struct {
	votes int32
	id    int64
}

func encodeCursor(p position) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%d", p.votes, p.id))
}

func decodeCursor(field, s string) (*position, error) {
	if s == endOfList {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	votes, id, ok := strings.Cut(string(raw), ":")
	if err != nil || !ok {
		return nil, engine.InvalidArgument("%s is not a cursor", field)
	}
	v, err1 := strconv.ParseInt(votes, 10, 32)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if err1 != nil || err2 != nil {
		return nil, engine.InvalidArgument("%s is not a cursor", field)
	}
	return &position{votes: int32(v), id: n}, nil
}

// list pages through the board, most votes first. A first page keeps its end through the
// subscription's journal, so a new question or a vote moves rows within the pages the client
// has instead of pushing them onto the next one.
func (b *board) list(ctx *engine.QueryCtx, args listArgs) (*engine.PaginationResult[Question], error) {
	me, err := callerID(ctx)
	if err != nil {
		return nil, err
	}
	opts := args.PaginationOpts
	var params queries.QuestionPageParams
	if opts.Cursor != nil {
		start, err := decodeCursor("paginationOpts.cursor", *opts.Cursor)
		if err != nil {
			return nil, err
		}
		if start == nil {
			return &engine.PaginationResult[Question]{Page: []Question{}, IsDone: true, ContinueCursor: endOfList}, nil
		}
		params.AfterVotes, params.AfterID = &start.votes, &start.id
	}
	endCursor := opts.EndCursor
	if endCursor == nil && ctx.Journal() != "" {
		j := ctx.Journal()
		endCursor = &j
	}

	res := &engine.PaginationResult[Question]{}
	var rows []queries.Question
	if endCursor != nil {
		end, err := decodeCursor("paginationOpts.endCursor", *endCursor)
		if err != nil {
			return nil, err
		}
		if end != nil {
			params.UntilVotes, params.UntilID = &end.votes, &end.id
		}
		params.MaxRows = maxPinnedRows
		if rows, err = b.q.QuestionPage(ctx, ctx.DB(), params); err != nil {
			return nil, err
		}
		res.IsDone, res.ContinueCursor = end == nil, *endCursor
		if len(rows) > 2*opts.NumItems {
			split := encodeCursor(position{votes: rows[opts.NumItems-1].Votes, id: rows[opts.NumItems-1].ID})
			status := "SplitRecommended"
			res.SplitCursor, res.PageStatus = &split, &status
		}
	} else {
		params.MaxRows = int32(opts.NumItems + 1)
		if rows, err = b.q.QuestionPage(ctx, ctx.DB(), params); err != nil {
			return nil, err
		}
		res.IsDone = len(rows) <= opts.NumItems
		res.ContinueCursor = endOfList
		if !res.IsDone {
			rows = rows[:opts.NumItems]
			last := rows[len(rows)-1]
			res.ContinueCursor = encodeCursor(position{votes: last.Votes, id: last.ID})
		}
	}
	if opts.EndCursor == nil {
		ctx.SetJournal(res.ContinueCursor)
	}

	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	voted, err := b.q.VoteList(ctx, ctx.DB(), queries.VoteListParams{UserID: me, QuestionIds: ids})
	if err != nil {
		return nil, err
	}
	votedSet := make(map[int64]bool, len(voted))
	for _, id := range voted {
		votedSet[id] = true
	}
	res.Page = make([]Question, len(rows))
	for i, r := range rows {
		res.Page[i] = Question{
			ID: strconv.FormatInt(r.ID, 10), CreationTime: float64(r.CreatedAt.Time.UnixMicro()) / 1000,
			Body: r.Body, Votes: int(r.Votes), Answered: r.AnsweredAt.Valid, Mine: r.AuthorID == me, Voted: votedSet[r.ID],
		}
	}
	return res, nil
}

// openCount is how many questions wait for an answer. Its SQL counts over the whole table, so
// its read set is the whole table: any change to questions re-runs it (docs/guide.md).
func (b *board) openCount(ctx *engine.QueryCtx, _ struct{}) (int64, error) {
	if _, err := callerID(ctx); err != nil {
		return 0, err
	}
	return b.q.QuestionCountOpen(ctx, ctx.DB())
}

type askArgs struct {
	Body string `json:"body"`
}

func (a *askArgs) Validate() error {
	a.Body = strings.TrimSpace(a.Body)
	if a.Body == "" || !utf8.ValidString(a.Body) || utf8.RuneCountInString(a.Body) > MaxBodyLength {
		return engine.InvalidArgument("a question is 1 to %d characters", MaxBodyLength)
	}
	return nil
}

func (b *board) ask(ctx *engine.MutationCtx, args askArgs) (string, error) {
	me, err := callerID(ctx)
	if err != nil {
		return "", err
	}
	id, err := b.q.QuestionInsert(ctx, ctx.DB(), queries.QuestionInsertParams{AuthorID: me, Body: args.Body})
	return strconv.FormatInt(id, 10), err
}

type questionArgs struct {
	QuestionID string `json:"questionId"`
}

func (a questionArgs) id() (int64, error) {
	id, err := strconv.ParseInt(a.QuestionID, 10, 64)
	if err != nil || id < 1 {
		return 0, engine.InvalidArgument("questionId is not a question id")
	}
	return id, nil
}

// upvote adds the caller's vote, once per question; an answered question takes no more votes.
// It reports whether the vote counted.
func (b *board) upvote(ctx *engine.MutationCtx, args questionArgs) (bool, error) {
	me, err := callerID(ctx)
	if err != nil {
		return false, err
	}
	qid, err := args.id()
	if err != nil {
		return false, err
	}
	n, err := b.q.QuestionVotesAdd(ctx, ctx.DB(), qid)
	if err != nil || n == 0 {
		return false, err // no such open question: nothing to count
	}
	added, err := b.q.VoteInsert(ctx, ctx.DB(), queries.VoteInsertParams{QuestionID: qid, UserID: me})
	if err != nil {
		return false, err
	}
	if added == 0 {
		// Voted before: the transaction rolls back the count too.
		return false, engine.NewError(engine.CodeConflict, "you already upvoted this question")
	}
	return true, nil
}

// markAnswered is the teacher's: the question stays on the board, marked, for
// Config.ArchiveAfter, then questions:archive removes it.
func (b *board) markAnswered(ctx *engine.MutationCtx, args questionArgs) (bool, error) {
	me, err := callerID(ctx)
	if err != nil {
		return false, err
	}
	qid, err := args.id()
	if err != nil {
		return false, err
	}
	u, err := b.q.UserGet(ctx, ctx.DB(), me)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, err
	}
	if !u.IsTeacher {
		return false, engine.Forbidden("only the teacher marks questions answered")
	}
	n, err := b.q.QuestionMarkAnswered(ctx, ctx.DB(), qid)
	if err != nil || n == 0 {
		return false, err
	}
	// Scheduled in this transaction: the archive runs only if the answer is recorded.
	_, err = ctx.RunAfter(b.cfg.ArchiveAfter, "questions:archive", args)
	return true, err
}

func (b *board) archive(ctx *engine.MutationCtx, args questionArgs) (bool, error) {
	qid, err := args.id()
	if err != nil {
		return false, err
	}
	n, err := b.q.QuestionDeleteAnswered(ctx, ctx.DB(), qid)
	return n > 0, err
}

// export is every question on the board, most votes first, for the teacher's CSV.
func (b *board) export(ctx *engine.QueryCtx, _ struct{}) ([]Question, error) {
	me, err := callerID(ctx)
	if err != nil {
		return nil, err
	}
	u, err := b.q.UserGet(ctx, ctx.DB(), me)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	if !u.IsTeacher {
		return nil, engine.Forbidden("only the teacher exports the board")
	}
	rows, err := b.q.QuestionPage(ctx, ctx.DB(), queries.QuestionPageParams{MaxRows: maxExportRows})
	if err != nil {
		return nil, err
	}
	out := make([]Question, len(rows))
	for i, r := range rows {
		out[i] = Question{ID: strconv.FormatInt(r.ID, 10), Body: r.Body, Votes: int(r.Votes), Answered: r.AnsweredAt.Valid}
	}
	return out, nil
}

// exportCSV is GET /http/questions.csv: the board as a spreadsheet, for the teacher (with their
// access token as a Bearer token).
func (b *board) exportCSV(ctx *engine.HTTPActionCtx, w http.ResponseWriter, r *http.Request) error {
	if _, err := callerID(ctx); err != nil {
		return err // 401
	}
	var qs []Question
	if err := ctx.RunQuery("questions:export", struct{}{}, &qs); err != nil {
		return err // 403 for a student
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "votes", "answered", "question"})
	for _, q := range qs {
		_ = cw.Write([]string{q.ID, strconv.Itoa(q.Votes), strconv.FormatBool(q.Answered), spreadsheetSafe(q.Body)})
	}
	cw.Flush()
	return cw.Error()
}

// spreadsheetSafe keeps a student's text from being read as a formula by the spreadsheet the
// teacher opens the CSV in.
func spreadsheetSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
