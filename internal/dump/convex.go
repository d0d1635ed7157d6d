package dump

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/internal/progress"
	"github.com/ripplehq/ripple/queries"
)

// `ripple import --convex` reads a snapshot made by `npx convex export --path <file>.zip`, as the
// ZIP or unpacked into a directory:
//
//	_tables/documents.jsonl          {"name": "<table>", "id": <number>} per table
//	<table>/documents.jsonl          one document a line, Convex's clean JSON export format
//	                                 (`_id` string, `_creationTime` float ms since the epoch)
//	<table>/generated_schema.jsonl   not read
//	_storage/, _components/          not read (file storage and components)
//	README.md                        not read
//
// and loads the seed chat's tables (users, conversations, conversationParticipants, messages,
// messageEmbeddings) and Convex Auth's password accounts (authAccounts) into Ripple's tables,
// in one transaction. Every document is read and checked before anything is written.

// convexMaxLine bounds one document (a 1536-float embedding is ~35 KB of JSON).
const convexMaxLine = 16 << 20

// Convex Auth's tables that hold nothing a Ripple deployment can use: sessions and refresh
// tokens (users sign in once more), verification codes, verifiers and rate limits.
var convexSkippedTables = []string{"authSessions", "authRefreshTokens", "authVerificationCodes", "authVerifiers", "authRateLimits"}

// The tables read, in reading order (referenced tables first).
var convexTables = []string{"users", "authAccounts", "conversations", "conversationParticipants", "messages", "messageEmbeddings"}

// ConvexResult says what ImportConvex did.
type ConvexResult struct {
	Users, Credentials, Conversations, Groups, Participants, Messages int64
	// QueuedForEmbedding is how many imported messages wait for the embedding sweep.
	QueuedForEmbedding int64
	// EmbeddingsNotImported counts messageEmbeddings documents whose vectors were not carried
	// over (no EmbeddingModel): their messages are queued for the sweep instead.
	EmbeddingsNotImported int64
	// EmbeddingsImported counts the vectors kept under Options.EmbeddingModel.
	EmbeddingsImported int64
	// Skipped counts the documents of tables deliberately not imported, by table.
	Skipped map[string]int64
	// Notes are things the operator should know (ignored parts of the snapshot, users without
	// a password).
	Notes []string
}

type convexUser struct {
	ID           string   `json:"_id"`
	CreationTime float64  `json:"_creationTime"`
	Name         *string  `json:"name"`
	Email        *string  `json:"email"`
	Image        *string  `json:"image"`
	EmailVerTime *float64 `json:"emailVerificationTime"`
	Phone        *string  `json:"phone"`
	PhoneVerTime *float64 `json:"phoneVerificationTime"`
	IsAnonymous  *bool    `json:"isAnonymous"`

	line     string // file:line, for messages
	email    string // canonical
	ripple   int64
	password string // the stored hash, "" without a password account
}

type convexAccount struct {
	ID                string  `json:"_id"`
	CreationTime      float64 `json:"_creationTime"`
	UserID            string  `json:"userId"`
	Provider          string  `json:"provider"`
	ProviderAccountID string  `json:"providerAccountId"`
	Secret            *string `json:"secret"`
	EmailVerified     *string `json:"emailVerified"`
	PhoneVerified     *string `json:"phoneVerified"`
}

type convexConversation struct {
	ID              string   `json:"_id"`
	CreationTime    float64  `json:"_creationTime"`
	Participants    []string `json:"participants"`
	Type            string   `json:"type"`
	LastMessageTime *float64 `json:"lastMessageTime"`

	line    string
	ripple  int64
	members []int64 // Ripple user ids from participants
}

type convexParticipant struct {
	ID             string   `json:"_id"`
	CreationTime   float64  `json:"_creationTime"`
	ConversationID string   `json:"conversationId"`
	UserID         string   `json:"userId"`
	JoinedAt       *float64 `json:"joinedAt"`
}

type convexMessage struct {
	ID             string  `json:"_id"`
	CreationTime   float64 `json:"_creationTime"`
	SenderID       string  `json:"senderId"`
	ConversationID string  `json:"conversationId"`
	Body           string  `json:"body"`
}

type convexEmbedding struct {
	ID             string          `json:"_id"`
	CreationTime   float64         `json:"_creationTime"`
	MessageID      string          `json:"messageId"`
	ConversationID string          `json:"conversationId"`
	SenderID       string          `json:"senderId"`
	Embedding      json.RawMessage `json:"embedding"`
}

// convexSnapshot is everything read from a snapshot, checked and mapped to Ripple ids.
type convexSnapshot struct {
	users         []*convexUser
	conversations []*convexConversation
	participants  [][3]int64 // conversation, user, joined_at (µs since the epoch)
	messages      []rippleMessage
	// vectors are the kept embeddings by Convex message id, as pgvector text, made with model.
	vectors map[string]string
	model   string
	res     ConvexResult
}

type rippleMessage struct {
	convexID             string
	sender, conversation int64 // indexes into users / conversations until ids are allocated
	body                 string
	createdAt            time.Time
}

// importVectorChunk is how many vectors one EmbeddingImport statement writes (a 1536-float
// vector is ~15 KB of text).
const importVectorChunk = 256

// modelDimensions reads the dimensions from a Ripple model id, "provider/model@dims".
func modelDimensions(model string) (int, error) {
	at := strings.LastIndex(model, "@")
	dims, err := strconv.Atoi(model[at+1:])
	if at < 0 || !strings.Contains(model[:max(at, 0)], "/") || err != nil || dims < 1 || dims > 16000 {
		return 0, fmt.Errorf("--embedding-model %q is not a Ripple model id like cohere/embed-v4.0@1536 (`ripple reembed` lists the ones stored)", model)
	}
	return dims, nil
}

// vectorText is a vector in pgvector's text form.
func vectorText(v []float64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(float64(float32(x)), 'g', -1, 32))
	}
	b.WriteByte(']')
	return b.String()
}

// openConvexSnapshot opens a ZIP file or a directory as a file system.
func openConvexSnapshot(path string) (fs.FS, func() error, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if st.IsDir() {
		return os.DirFS(path), func() error { return nil }, nil
	}
	z, err := zip.OpenReader(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is neither a directory nor a ZIP file: %w", path, err)
	}
	return z, z.Close, nil
}

// ImportConvex loads a Convex snapshot (a ZIP from `npx convex export`, or the same tree as a
// directory) into the pool's schema in one transaction. Every Convex id gets a new Ripple id
// and every reference is mapped; `_creationTime` becomes created_at; emails take the auth
// service's canonical form; Convex Auth password hashes become credentials that sign in with
// the same password (engine.ConvexPasswordHash). Embedding vectors are not imported: every
// message is queued for the embedding sweep. A target holding data is refused (ErrNotEmpty)
// unless opts.Replace, which empties the chat's tables and accounts first. On any error nothing
// is changed.
func ImportConvex(ctx context.Context, pool *pgxpool.Pool, path string, opts Options) (*ConvexResult, error) {
	fsys, closeFS, err := openConvexSnapshot(path)
	if err != nil {
		return nil, err
	}
	defer closeFS()

	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := queries.New().ImportBegin(ctx, tx); err != nil {
		return nil, err
	}
	tables, err := convexTargetTables(ctx, tx, opts.schema())
	if err != nil {
		return nil, err
	}
	if err := refuseConvexData(ctx, tx, tables, opts.Replace); err != nil {
		return nil, err
	}

	snap, err := readConvexSnapshot(fsys, opts.Progress, opts.EmbeddingModel)
	if err != nil {
		return nil, err
	}

	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = ident(t)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return nil, fmt.Errorf("locking the tables: %w", err)
	}
	if err := refuseConvexData(ctx, tx, tables, opts.Replace); err != nil {
		return nil, err
	}
	if opts.Replace {
		if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(names, ", ")); err != nil {
			return nil, fmt.Errorf("emptying the tables: %w", err)
		}
	}
	if err := writeConvexSnapshot(ctx, tx, snap, opts.Progress); err != nil {
		return nil, err
	}
	if opts.DryRun {
		return &snap.res, nil // rolled back by the deferred Rollback
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return &snap.res, nil
}

// convexTargetTables checks the target is a migrated chat schema that accepts Convex password
// hashes, and returns the tables an import fills or --replace empties: the chat's (every table
// not named ripple_* or river_*) and the auth service's per-user tables. Signing keys, admin
// keys and the engine's tables are left alone.
func convexTargetTables(ctx context.Context, tx pgx.Tx, schemaName string) ([]string, error) {
	if err := checkSchema(ctx, tx, schemaName); err != nil {
		return nil, err
	}
	version, err := schemaVersion(ctx, tx, schemaName)
	if err != nil {
		return nil, err
	}
	if version == 0 {
		return nil, errors.New("the target has no Ripple schema: run `ripple migrate` on it first")
	}
	var scrypt bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+ident(schemaName)+".ripple_migration WHERE part = 'auth' AND version >= 2)").Scan(&scrypt); err != nil {
		return nil, err
	}
	if !scrypt {
		return nil, errors.New("the target's schema predates Convex password hashes: run `ripple migrate` on it first")
	}
	all, err := readTables(ctx, tx)
	if err != nil {
		return nil, err
	}
	var out []string
	have := map[string]bool{}
	for _, t := range all {
		have[t.Name] = true
		if !strings.HasPrefix(t.Name, "ripple_") {
			out = append(out, t.Name)
		}
	}
	for _, need := range []string{"users", "conversations", "conversation_participants", "messages", "message_embedding_queue"} {
		if !have[need] {
			return nil, fmt.Errorf("the target has no table %s: is it the chat's schema?", need)
		}
	}
	return append(out, "ripple_auth_credentials", "ripple_auth_sessions", "ripple_auth_refresh_tokens"), nil
}

func refuseConvexData(ctx context.Context, tx pgx.Tx, tables []string, replace bool) error {
	if replace {
		return nil
	}
	var holding []string
	for _, t := range tables {
		var any bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+ident(t)+")").Scan(&any); err != nil {
			return err
		}
		if any {
			holding = append(holding, t)
		}
	}
	if len(holding) > 0 {
		return fmt.Errorf("%w (%s); import into an empty database, or pass --replace to delete it first", ErrNotEmpty, strings.Join(holding, ", "))
	}
	return nil
}

// convexTime converts `_creationTime` and other Convex timestamps (float ms) to a time with
// Postgres's microsecond precision.
func convexTime(ms float64) (time.Time, bool) {
	if math.IsNaN(ms) || ms <= 0 || ms > 1e15 {
		return time.Time{}, false
	}
	return time.UnixMicro(int64(math.Round(ms * 1000))).UTC(), true
}

// eachDocument calls fn with every line of <table>/documents.jsonl (decoded into a fresh T by
// new, unknown fields refused), naming the file and line in any error. A table without a file
// has no documents.
func eachDocument[T any](fsys fs.FS, table string, bar *progress.Bar, fn func(doc *T, at string) error) (int64, error) {
	file := table + "/documents.jsonl"
	f, err := fsys.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), convexMaxLine)
	var n, line int64
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		bar.Add(int64(len(raw)) + 1)
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		at := fmt.Sprintf("%s:%d", file, line)
		doc := new(T)
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(doc); err != nil {
			return n, fmt.Errorf("%s: %w", at, err)
		}
		if dec.More() {
			return n, fmt.Errorf("%s: more than one JSON value on the line", at)
		}
		if err := fn(doc, at); err != nil {
			return n, fmt.Errorf("%s: %w", at, err)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("%s:%d: %w", file, line+1, err)
	}
	return n, nil
}

// snapshotSize is the size of every documents.jsonl, for the reading bar.
func snapshotSize(fsys fs.FS, tables []string) int64 {
	var total int64
	for _, t := range tables {
		if st, err := fs.Stat(fsys, t+"/documents.jsonl"); err == nil {
			total += st.Size()
		}
	}
	return total
}

// readConvexSnapshot reads and checks every document the import uses, mapping references.
func readConvexSnapshot(fsys fs.FS, progressOut io.Writer, model string) (*convexSnapshot, error) {
	dims := 0
	if model != "" {
		var err error
		if dims, err = modelDimensions(model); err != nil {
			return nil, err
		}
	}
	snap := &convexSnapshot{res: ConvexResult{Skipped: map[string]int64{}}}
	res := &snap.res

	// Which tables: _tables/documents.jsonl, and every top-level directory.
	listed := map[string]bool{}
	type tableEntry struct {
		Name string          `json:"name"`
		ID   json.RawMessage `json:"id"`
	}
	if _, err := eachDocument(fsys, "_tables", nil, func(e *tableEntry, at string) error {
		if e.Name == "" {
			return errors.New("a table without a name")
		}
		listed[e.Name] = true
		return nil
	}); err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		switch {
		case !e.IsDir():
		case e.Name() == "_tables":
		case e.Name() == "_storage":
			res.Notes = append(res.Notes, "_storage/ (file storage) is not imported: the chat stores no files")
		case e.Name() == "_components":
			res.Notes = append(res.Notes, "_components/ (Convex components' tables) is not imported")
		default:
			listed[e.Name()] = true
		}
	}
	if len(listed) == 0 {
		return nil, errors.New("no tables found: is this a snapshot from `npx convex export`?")
	}
	known := append(slices.Clone(convexTables), convexSkippedTables...)
	var unknown []string
	for name := range listed {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("the snapshot has table(s) %s, which the chat does not have; ripple import --convex knows %s",
			strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	if !listed["users"] {
		return nil, errors.New("the snapshot has no users table")
	}

	bar := progress.New(progressOut, "reading the Convex snapshot", snapshotSize(fsys, known), progress.Bytes)
	defer bar.Stop()

	// users
	users := map[string]int{} // Convex id → index
	if _, err := eachDocument(fsys, "users", bar, func(u *convexUser, at string) error {
		if err := convexDocID(u.ID, u.CreationTime, users); err != nil {
			return err
		}
		u.line = at
		users[u.ID] = len(snap.users)
		snap.users = append(snap.users, u)
		return nil
	}); err != nil {
		return nil, err
	}
	userRef := func(field, id string) (int, error) {
		i, ok := users[id]
		if !ok {
			return 0, fmt.Errorf("%s %q is not a document of users", field, id)
		}
		return i, nil
	}

	// authAccounts: password accounts become credentials.
	others := map[string]int64{}
	if _, err := eachDocument(fsys, "authAccounts", bar, func(a *convexAccount, at string) error {
		i, err := userRef("userId", a.UserID)
		if err != nil {
			return err
		}
		if a.Provider != "password" {
			others[a.Provider]++
			return nil
		}
		u := snap.users[i]
		if u.password != "" {
			return fmt.Errorf("user %q has a second password account", a.UserID)
		}
		if a.Secret == nil {
			return fmt.Errorf("password account %q has no secret", a.ID)
		}
		hash, err := engine.ConvexPasswordHash(*a.Secret)
		if err != nil {
			return fmt.Errorf("password account %q: %w", a.ID, err)
		}
		u.password = hash
		if u.Email == nil || strings.TrimSpace(*u.Email) == "" {
			// Convex Auth's users.email is optional; the account's id is the email signed in with.
			u.Email = &a.ProviderAccountID
		} else if !strings.EqualFold(strings.TrimSpace(*u.Email), strings.TrimSpace(a.ProviderAccountID)) {
			return fmt.Errorf("password account %q signs in as %q but its user %q has the email %q; Ripple signs in by the user's email",
				a.ID, a.ProviderAccountID, a.UserID, *u.Email)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for p, n := range others {
		res.Notes = append(res.Notes, fmt.Sprintf("%d authAccounts of provider %q not imported: Ripple signs in with email and password only", n, p))
	}

	// Canonical emails, names, and collisions.
	byEmail := map[string]*convexUser{}
	var noPassword int64
	for _, u := range snap.users {
		if u.Email == nil || strings.TrimSpace(*u.Email) == "" {
			return nil, fmt.Errorf("%s: user %q has no email (and no password account naming one)", u.line, u.ID)
		}
		email, err := engine.CanonicalEmail(*u.Email)
		if err != nil {
			return nil, fmt.Errorf("%s: user %q: email %q: %w", u.line, u.ID, *u.Email, err)
		}
		if len(email) > 320 {
			return nil, fmt.Errorf("%s: user %q: email is longer than 320 characters", u.line, u.ID)
		}
		if prev := byEmail[email]; prev != nil {
			return nil, fmt.Errorf("users %q (%s, %q) and %q (%s, %q) have the same email once canonical (%s): "+
				"Ripple has one account per email; merge or remove one in Convex and export again (nothing was imported)",
				prev.ID, prev.line, *prev.Email, u.ID, u.line, *u.Email, email)
		}
		byEmail[email] = u
		u.email = email
		if u.Name == nil || strings.TrimSpace(*u.Name) == "" {
			// Convex Auth's users.name is optional; Ripple's is not.
			local, _, _ := strings.Cut(email, "@")
			u.Name = &local
		}
		name := strings.TrimSpace(*u.Name)
		if n := utf8.RuneCountInString(name); n > 200 || !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
			return nil, fmt.Errorf("%s: user %q: name must be 1 to 200 characters of valid UTF-8", u.line, u.ID)
		}
		u.Name = &name
		if u.password == "" {
			noPassword++
		}
	}
	if noPassword > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d user(s) have no password account: imported without a way to sign in", noPassword))
	}

	// conversations
	convs := map[string]int{}
	directPairs := map[[2]int]string{}
	if _, err := eachDocument(fsys, "conversations", bar, func(c *convexConversation, at string) error {
		if err := convexDocID(c.ID, c.CreationTime, convs); err != nil {
			return err
		}
		var members []int
		for _, p := range c.Participants {
			i, err := userRef("participants", p)
			if err != nil {
				return err
			}
			if !slices.Contains(members, i) {
				members = append(members, i)
			}
		}
		switch c.Type {
		case "direct":
			if len(members) != 2 {
				return fmt.Errorf("direct conversation %q has %d distinct participants, want 2", c.ID, len(members))
			}
			pair := [2]int{min(members[0], members[1]), max(members[0], members[1])}
			if prev, dup := directPairs[pair]; dup {
				return fmt.Errorf("direct conversations %q and %q are between the same two users; Ripple has one per pair", prev, c.ID)
			}
			directPairs[pair] = c.ID
		case "group":
		default:
			return fmt.Errorf("conversation %q has type %q, want \"direct\" or \"group\"", c.ID, c.Type)
		}
		if c.LastMessageTime != nil {
			if _, ok := convexTime(*c.LastMessageTime); !ok {
				return fmt.Errorf("lastMessageTime %v is not a time", *c.LastMessageTime)
			}
		}
		c.line = at
		for _, m := range members {
			c.members = append(c.members, int64(m))
		}
		convs[c.ID] = len(snap.conversations)
		snap.conversations = append(snap.conversations, c)
		return nil
	}); err != nil {
		return nil, err
	}
	convRef := func(field, id string) (int, error) {
		i, ok := convs[id]
		if !ok {
			return 0, fmt.Errorf("%s %q is not a document of conversations", field, id)
		}
		return i, nil
	}

	// conversationParticipants, then every conversation's participants array (joined when the
	// conversation was made) for the members it lists without a row.
	joined := map[[2]int]bool{}
	if _, err := eachDocument(fsys, "conversationParticipants", bar, func(p *convexParticipant, at string) error {
		c, err := convRef("conversationId", p.ConversationID)
		if err != nil {
			return err
		}
		u, err := userRef("userId", p.UserID)
		if err != nil {
			return err
		}
		when := p.CreationTime
		if p.JoinedAt != nil {
			when = *p.JoinedAt
		}
		t, ok := convexTime(when)
		if !ok {
			return fmt.Errorf("joinedAt %v is not a time", when)
		}
		if snap.conversations[c].Type == "direct" && !slices.Contains(snap.conversations[c].members, int64(u)) {
			return fmt.Errorf("user %q is not one of the two participants of direct conversation %q", p.UserID, p.ConversationID)
		}
		if joined[[2]int{c, u}] {
			return nil // the same membership twice: the first row stands
		}
		joined[[2]int{c, u}] = true
		snap.participants = append(snap.participants, [3]int64{int64(c), int64(u), t.UnixMicro()})
		return nil
	}); err != nil {
		return nil, err
	}
	for ci, c := range snap.conversations {
		t, _ := convexTime(c.CreationTime)
		for _, u := range c.members {
			if !joined[[2]int{ci, int(u)}] {
				joined[[2]int{ci, int(u)}] = true
				snap.participants = append(snap.participants, [3]int64{int64(ci), u, t.UnixMicro()})
			}
		}
	}

	// messages
	msgs := map[string]bool{}
	if _, err := eachDocument(fsys, "messages", bar, func(m *convexMessage, at string) error {
		if err := convexDocID(m.ID, m.CreationTime, nil); err != nil {
			return err
		}
		if msgs[m.ID] {
			return fmt.Errorf("_id %q appears twice", m.ID)
		}
		msgs[m.ID] = true
		s, err := userRef("senderId", m.SenderID)
		if err != nil {
			return err
		}
		c, err := convRef("conversationId", m.ConversationID)
		if err != nil {
			return err
		}
		if n := utf8.RuneCountInString(m.Body); n == 0 || n > 4000 || strings.TrimSpace(m.Body) == "" || !utf8.ValidString(m.Body) || strings.ContainsRune(m.Body, 0) {
			return fmt.Errorf("message %q: body has %d characters; Ripple takes 1 to 4000 of valid text, not blank", m.ID, n)
		}
		t, _ := convexTime(m.CreationTime)
		snap.messages = append(snap.messages, rippleMessage{convexID: m.ID, sender: int64(s), conversation: int64(c), body: m.Body, createdAt: t})
		return nil
	}); err != nil {
		return nil, err
	}

	// messageEmbeddings: checked; the vectors kept under the model given, else counted.
	snap.vectors, snap.model = map[string]string{}, model
	n, err := eachDocument(fsys, "messageEmbeddings", bar, func(e *convexEmbedding, at string) error {
		if !msgs[e.MessageID] {
			return fmt.Errorf("messageId %q is not a document of messages", e.MessageID)
		}
		if model == "" {
			return nil
		}
		var vec []float64
		if err := json.Unmarshal(e.Embedding, &vec); err != nil {
			return fmt.Errorf("embedding is not an array of numbers: %v", err)
		}
		if len(vec) != dims {
			return fmt.Errorf("embedding has %d dimensions; --embedding-model %s has %d", len(vec), model, dims)
		}
		if _, dup := snap.vectors[e.MessageID]; dup {
			return fmt.Errorf("message %q has a second embedding", e.MessageID)
		}
		snap.vectors[e.MessageID] = vectorText(vec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if model == "" {
		res.EmbeddingsNotImported = n
	} else {
		res.EmbeddingsImported = n
	}

	for _, table := range convexSkippedTables {
		n, err := eachDocument(fsys, table, bar, func(_ *map[string]any, at string) error { return nil })
		if err != nil {
			return nil, err
		}
		if n > 0 {
			res.Skipped[table] = n
		}
	}
	bar.Finish()
	return snap, nil
}

// convexDocID checks a document's system fields.
func convexDocID(id string, creation float64, seen map[string]int) error {
	if id == "" {
		return errors.New("the document has no _id")
	}
	if _, ok := convexTime(creation); !ok {
		return fmt.Errorf("document %q: _creationTime %v is not a time in milliseconds", id, creation)
	}
	if seen != nil {
		if _, dup := seen[id]; dup {
			return fmt.Errorf("_id %q appears twice", id)
		}
	}
	return nil
}

// allocateIDs takes n values of a table's id identity sequence.
func allocateIDs(ctx context.Context, tx pgx.Tx, table string, n int) ([]int64, error) {
	if n == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, "SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2)", ident(table), n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// writeConvexSnapshot inserts what was read: ids are taken from the tables' own sequences
// first, so references are mapped before the rows are copied in.
func writeConvexSnapshot(ctx context.Context, tx pgx.Tx, snap *convexSnapshot, progressOut io.Writer) error {
	res := &snap.res
	// Ids in creation order, so Ripple's ids sort the way Convex's documents were made.
	sort.SliceStable(snap.messages, func(i, j int) bool { return snap.messages[i].createdAt.Before(snap.messages[j].createdAt) })

	total := int64(len(snap.users)) + int64(len(snap.conversations)) + int64(len(snap.participants)) + 2*int64(len(snap.messages))
	for _, u := range snap.users {
		if u.password != "" {
			total++
		}
	}
	bar := progress.New(progressOut, "importing from Convex", total, progress.Rows)
	defer bar.Stop()
	copyRows := func(table string, cols []string, rows [][]any) error {
		if len(rows) == 0 {
			return nil
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
		if err != nil {
			return fmt.Errorf("writing %s: %w", table, err)
		}
		bar.Add(n)
		return nil
	}

	userIDs, err := allocateIDs(ctx, tx, "users", len(snap.users))
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	var userRows, credRows [][]any
	for i, u := range snap.users {
		u.ripple = userIDs[i]
		created, _ := convexTime(u.CreationTime)
		userRows = append(userRows, []any{u.ripple, *u.Name, u.email, created})
		if u.password != "" {
			credRows = append(credRows, []any{u.ripple, u.password, now, now})
		}
	}
	if err := copyRows("users", []string{"id", "name", "email", "created_at"}, userRows); err != nil {
		return err
	}
	if err := copyRows("ripple_auth_credentials", []string{"user_id", "password_hash", "created_at", "updated_at"}, credRows); err != nil {
		return err
	}
	res.Users, res.Credentials = int64(len(userRows)), int64(len(credRows))

	convIDs, err := allocateIDs(ctx, tx, "conversations", len(snap.conversations))
	if err != nil {
		return err
	}
	last := make([]time.Time, len(snap.conversations))
	for _, m := range snap.messages {
		if m.createdAt.After(last[m.conversation]) {
			last[m.conversation] = m.createdAt
		}
	}
	var convRows [][]any
	for i, c := range snap.conversations {
		c.ripple = convIDs[i]
		created, _ := convexTime(c.CreationTime)
		var low, high, lastTime any
		if c.Type == "direct" {
			a, b := snap.users[c.members[0]].ripple, snap.users[c.members[1]].ripple
			low, high = min(a, b), max(a, b)
		} else {
			res.Groups++
		}
		if c.LastMessageTime != nil {
			lastTime, _ = convexTime(*c.LastMessageTime)
		} else if !last[i].IsZero() {
			lastTime = last[i]
		}
		convRows = append(convRows, []any{c.ripple, c.Type, low, high, lastTime, created})
	}
	if err := copyRows("conversations", []string{"id", "type", "direct_user_low", "direct_user_high", "last_message_time", "created_at"}, convRows); err != nil {
		return err
	}
	res.Conversations = int64(len(convRows))

	partRows := make([][]any, len(snap.participants))
	for i, p := range snap.participants {
		partRows[i] = []any{snap.conversations[p[0]].ripple, snap.users[p[1]].ripple, time.UnixMicro(p[2]).UTC()}
	}
	if err := copyRows("conversation_participants", []string{"conversation_id", "user_id", "joined_at"}, partRows); err != nil {
		return err
	}
	res.Participants = int64(len(partRows))

	msgIDs, err := allocateIDs(ctx, tx, "messages", len(snap.messages))
	if err != nil {
		return err
	}
	msgRows := make([][]any, len(snap.messages))
	queueRows := make([][]any, 0, len(snap.messages))
	var vecIDs []int64
	var vecs []string
	for i, m := range snap.messages {
		msgRows[i] = []any{msgIDs[i], snap.users[m.sender].ripple, snap.conversations[m.conversation].ripple, m.body, m.createdAt}
		if v, ok := snap.vectors[m.convexID]; ok {
			vecIDs, vecs = append(vecIDs, msgIDs[i]), append(vecs, v)
		} else {
			queueRows = append(queueRows, []any{msgIDs[i]})
		}
	}
	if err := copyRows("messages", []string{"id", "sender_id", "conversation_id", "body", "created_at"}, msgRows); err != nil {
		return err
	}
	if err := copyRows("message_embedding_queue", []string{"message_id"}, queueRows); err != nil {
		return err
	}
	for start := 0; start < len(vecIDs); start += importVectorChunk {
		end := min(start+importVectorChunk, len(vecIDs))
		n, err := queries.New().EmbeddingImport(ctx, tx, queries.EmbeddingImportParams{
			Model: snap.model, MessageIds: vecIDs[start:end], Embeddings: vecs[start:end]})
		if err != nil {
			return fmt.Errorf("writing message_embeddings: %w", err)
		}
		bar.Add(n)
	}
	res.Messages, res.QueuedForEmbedding = int64(len(msgRows)), int64(len(queueRows))
	bar.Finish()
	return nil
}
