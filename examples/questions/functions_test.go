package questions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/examples/questions"
	"github.com/ripplehq/ripple/internal/testdb"
)

// board is the board's functions served by a real engine, with accounts, on a schema of its
// own migrated with the board's migrations.
type board struct {
	t      *testing.T
	ctx    context.Context
	db     *testdb.Bundle
	engine *engine.Engine
	srv    *httptest.Server
}

func newBoard(t *testing.T, cfg *questions.Config) *board {
	t.Helper()
	ctx := context.Background()
	db := testdb.NewAppSchema(t, questions.Migrations())
	auth, err := engine.NewAuthService(db.Pool, &engine.AuthConfig{})
	require.NoError(t, err)
	require.NoError(t, auth.Start(ctx))
	reg := engine.NewRegistry()
	require.NoError(t, questions.Register(reg, cfg))
	e, err := engine.New(db.Pool, reg, &engine.Config{Schema: db.Schema, Auth: auth.Authenticator()})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	mux := http.NewServeMux()
	auth.Routes(mux)
	mux.Handle("/", e.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, e.Stop(context.Background()))
	})
	return &board{t: t, ctx: ctx, db: db, engine: e, srv: srv}
}

// user signs up through the auth routes and returns their identity and access token.
func (b *board) user(name string) (engine.Identity, string) {
	b.t.Helper()
	body, _ := json.Marshal(map[string]string{"email": strings.ToLower(name) + "@school.example", "password": "correct horse battery", "name": name})
	resp, err := http.Post(b.srv.URL+"/api/auth/signup", "application/json", bytes.NewReader(body))
	require.NoError(b.t, err)
	defer resp.Body.Close()
	require.Equal(b.t, http.StatusOK, resp.StatusCode)
	var out struct {
		AccessToken string `json:"accessToken"`
		User        struct {
			ID string `json:"_id"`
		} `json:"user"`
	}
	require.NoError(b.t, json.NewDecoder(resp.Body).Decode(&out))
	require.NotEmpty(b.t, out.User.ID)
	return engine.Identity{UserID: out.User.ID}, out.AccessToken
}

func (b *board) call(path string, args any, as engine.Identity, out any) error {
	return b.engine.Call(b.ctx, path, args, as, out)
}

func code(t *testing.T, err error) engine.ErrorCode {
	t.Helper()
	e, ok := engine.AsError(err)
	require.True(t, ok, "want a typed error, got %v", err)
	return e.Code
}

type page = engine.PaginationResult[questions.Question]

func listArgs(n int, cursor *string) map[string]any {
	return map[string]any{"paginationOpts": engine.PaginationOpts{NumItems: n, Cursor: cursor}}
}

func bodies(p page) []string {
	out := make([]string, len(p.Page))
	for i, q := range p.Page {
		out[i] = q.Body
	}
	return out
}

func TestBoard(t *testing.T) {
	b := newBoard(t, &questions.Config{ArchiveAfter: time.Millisecond})
	ann, _ := b.user("Ann")
	bob, _ := b.user("Bob")
	teacher, teacherToken := b.user("Tess")
	var ok bool
	require.NoError(t, b.call("users:makeTeacher", map[string]string{"email": "TESS@school.example"}, engine.Identity{Admin: true}, &ok))
	require.True(t, ok)

	// Every function checks identity first.
	var p page
	require.Equal(t, engine.CodeUnauthenticated, code(t, b.call("questions:list", listArgs(10, nil), engine.Identity{}, &p)))
	require.Equal(t, engine.CodeUnauthenticated, code(t, b.call("questions:ask", map[string]string{"body": "?"}, engine.Identity{}, nil)))
	// Only an operator names teachers.
	require.Equal(t, engine.CodeForbidden, code(t, b.call("users:makeTeacher", map[string]string{"email": "ann@school.example"}, ann, &ok)))

	// Bad input is a typed error and changes nothing.
	require.Equal(t, engine.CodeInvalidArgument, code(t, b.call("questions:ask", map[string]string{"body": "   "}, ann, nil)))
	require.Equal(t, engine.CodeInvalidArgument, code(t, b.call("questions:ask", map[string]string{"body": strings.Repeat("é", questions.MaxBodyLength+1)}, ann, nil)))
	require.Equal(t, engine.CodeInvalidArgument, code(t, b.call("questions:list", listArgs(0, nil), ann, &p)))
	bad := "not-a-cursor"
	require.Equal(t, engine.CodeInvalidArgument, code(t, b.call("questions:list", listArgs(10, &bad), ann, &p)))
	require.Equal(t, engine.CodeInvalidArgument, code(t, b.call("questions:upvote", map[string]string{"questionId": "x"}, ann, nil)))

	var q1, q2, q3 string
	require.NoError(t, b.call("questions:ask", map[string]string{"body": "  What is a monad?  "}, ann, &q1))
	require.NoError(t, b.call("questions:ask", map[string]string{"body": "When is the exam?"}, bob, &q2))
	require.NoError(t, b.call("questions:ask", map[string]string{"body": "Is chapter 3 included?"}, bob, &q3))

	// Votes order the board; one vote per student.
	require.NoError(t, b.call("questions:upvote", map[string]string{"questionId": q2}, ann, &ok))
	require.True(t, ok)
	require.NoError(t, b.call("questions:upvote", map[string]string{"questionId": q2}, bob, &ok))
	require.Equal(t, engine.CodeConflict, code(t, b.call("questions:upvote", map[string]string{"questionId": q2}, ann, &ok)))
	require.NoError(t, b.call("questions:upvote", map[string]string{"questionId": q1}, bob, &ok))

	require.NoError(t, b.call("questions:list", listArgs(2, nil), ann, &p))
	require.Equal(t, []string{"When is the exam?", "What is a monad?"}, bodies(p))
	require.Equal(t, 2, p.Page[0].Votes)
	require.True(t, p.Page[0].Voted)
	require.False(t, p.Page[1].Voted)
	require.True(t, p.Page[1].Mine)
	require.False(t, p.IsDone)
	cursor := p.ContinueCursor
	require.NoError(t, b.call("questions:list", listArgs(2, &cursor), ann, &p))
	require.Equal(t, []string{"Is chapter 3 included?"}, bodies(p))
	require.True(t, p.IsDone)

	// Only the teacher marks questions answered; the archive is scheduled with the answer and
	// takes the question off the board.
	require.Equal(t, engine.CodeForbidden, code(t, b.call("questions:markAnswered", map[string]string{"questionId": q2}, bob, &ok)))
	require.NoError(t, b.call("questions:markAnswered", map[string]string{"questionId": q2}, teacher, &ok))
	require.True(t, ok)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.db.Pool.QueryRow(b.ctx, "SELECT count(*) FROM questions WHERE id = $1", q2).Scan(&n))
		return n == 0
	}, time.Minute, 20*time.Millisecond, "the archive did not run")
	require.NoError(t, b.call("questions:list", listArgs(10, nil), ann, &p))
	require.Equal(t, []string{"What is a monad?", "Is chapter 3 included?"}, bodies(p))
	var open int64
	require.NoError(t, b.call("questions:openCount", struct{}{}, bob, &open))
	require.EqualValues(t, 2, open)
	var formula string
	require.NoError(t, b.call("questions:ask", map[string]string{"body": "=HYPERLINK(\"x\")"}, bob, &formula))

	// The HTTP action: the teacher's CSV; a student is refused, an anonymous caller too.
	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/http/questions.csv", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	status, csv := get(teacherToken)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "id,votes,answered,question\n"+q1+",1,false,What is a monad?\n"+formula+",0,false,\"'=HYPERLINK(\"\"x\"\")\"\n"+q3+",0,false,Is chapter 3 included?\n", csv)
	status, _ = get("")
	require.Equal(t, http.StatusUnauthorized, status)
	_, annToken := b.user("Anna")
	status, _ = get(annToken)
	require.Equal(t, http.StatusForbidden, status)
}
