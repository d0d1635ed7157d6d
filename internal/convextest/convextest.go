// Package convextest writes small Convex snapshots, laid out the way `npx convex export` writes
// them, for the tests of `ripple import --convex`.
package convextest

import (
	"archive/zip"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/scrypt"
	"golang.org/x/text/unicode/norm"
)

// Snapshot is a snapshot's tables: name → documents (clean JSON objects).
type Snapshot map[string][]map[string]any

// LuciaHash is lucia's Scrypt hash of password with the given salt (hex text), as Convex
// Auth's Password provider stores it: "<salt>:<key>", key = scrypt(NFKC(password),
// UTF-8(salt), N=16384, r=16, p=1, dkLen=64).
func LuciaHash(t testing.TB, password, salt string) string {
	t.Helper()
	key, err := scrypt.Key([]byte(norm.NFKC.String(password)), []byte(salt), 16384, 16, 1, 64)
	require.NoError(t, err)
	return salt + ":" + hex.EncodeToString(key)
}

// The seed chat's snapshot: Ada and Bob (both with passwords), one direct conversation, three
// messages (written out of time order), an embedding, a session, a stored file.
const (
	AdaPassword = "ada's convex password"
	BobPassword = "bob's convex password"
	AdaEmail    = "ada@school.test" // canonical; the snapshot has "Ada@School.test "
	BobEmail    = "bob@school.test"
)

// Chat returns the seed chat's snapshot.
func Chat(t testing.TB) Snapshot {
	const t0 = 1717000000000.0
	return Snapshot{
		"users": {
			{"_id": "u_ada", "_creationTime": t0 + 0.5, "name": "Ada", "email": "Ada@School.test "},
			{"_id": "u_bob", "_creationTime": t0 + 1.25, "name": "Bob", "email": BobEmail},
		},
		"authAccounts": {
			{"_id": "a_ada", "_creationTime": t0 + 1, "userId": "u_ada", "provider": "password", "providerAccountId": "ada@school.test",
				"secret": LuciaHash(t, AdaPassword, "00112233445566778899aabbccddeeff")},
			{"_id": "a_bob", "_creationTime": t0 + 2, "userId": "u_bob", "provider": "password", "providerAccountId": BobEmail,
				"secret": LuciaHash(t, BobPassword, "ffeeddccbbaa99887766554433221100")},
		},
		"authSessions": {
			{"_id": "s_1", "_creationTime": t0 + 3, "userId": "u_ada", "expirationTime": t0 + 1e9},
		},
		"conversations": {
			{"_id": "c_1", "_creationTime": t0 + 10, "participants": []string{"u_ada", "u_bob"}, "type": "direct", "lastMessageTime": t0 + 300},
		},
		"conversationParticipants": {
			{"_id": "p_1", "_creationTime": t0 + 10, "conversationId": "c_1", "userId": "u_ada", "joinedAt": t0 + 10},
			{"_id": "p_2", "_creationTime": t0 + 10, "conversationId": "c_1", "userId": "u_bob", "joinedAt": t0 + 11},
		},
		"messages": {
			{"_id": "m_2", "_creationTime": t0 + 200, "senderId": "u_bob", "conversationId": "c_1", "body": "hi Ada"},
			{"_id": "m_1", "_creationTime": t0 + 100, "senderId": "u_ada", "conversationId": "c_1", "body": "hello Bob"},
			{"_id": "m_3", "_creationTime": t0 + 300, "senderId": "u_ada", "conversationId": "c_1", "body": "see you in class"},
		},
		"messageEmbeddings": {
			{"_id": "e_1", "_creationTime": t0 + 101, "messageId": "m_1", "conversationId": "c_1", "senderId": "u_ada", "embedding": []float64{0.1, 0.2, 0.3}},
		},
	}
}

// WriteDir writes the snapshot under dir as Convex lays it out, with README.md, _tables and
// a _storage entry, and returns dir.
func (s Snapshot) WriteDir(t testing.TB, dir string) string {
	t.Helper()
	for path, body := range s.Files(t) {
		full := filepath.Join(dir, filepath.FromSlash(path))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, body, 0o644))
	}
	return dir
}

// WriteZip writes the snapshot as one ZIP file at path, and returns path.
func (s Snapshot) WriteZip(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	z := zip.NewWriter(f)
	files := s.Files(t)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := z.Create(n)
		require.NoError(t, err)
		_, err = w.Write(files[n])
		require.NoError(t, err)
	}
	require.NoError(t, z.Close())
	require.NoError(t, f.Close())
	return path
}

// Files is the snapshot's files by slash-separated path.
func (s Snapshot) Files(t testing.TB) map[string][]byte {
	t.Helper()
	files := map[string][]byte{
		"README.md":                []byte("This is a snapshot of a Convex deployment.\n"),
		"_storage/documents.jsonl": nil,
	}
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	var tables strings.Builder
	for i, name := range names {
		line, err := json.Marshal(map[string]any{"name": name, "id": 10001 + i})
		require.NoError(t, err)
		tables.Write(append(line, '\n'))
		var docs strings.Builder
		for _, d := range s[name] {
			line, err := json.Marshal(d)
			require.NoError(t, err)
			docs.Write(append(line, '\n'))
		}
		files[name+"/documents.jsonl"] = []byte(docs.String())
		files[name+"/generated_schema.jsonl"] = []byte("\"any\"\n")
	}
	files["_tables/documents.jsonl"] = []byte(tables.String())
	return files
}
