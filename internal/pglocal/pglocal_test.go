package pglocal_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/pglocal"
)

// A server whose owning process is gone (killed before its Stop ran) is stopped and removed by
// the next Start; one whose owner lives is left running.
func TestStartRemovesOrphans(t *testing.T) {
	orphan, kept := pglocal.ForTest(t), pglocal.ForTest(t)
	postmaster := postmasterPID(t, orphan)

	// The orphan's owner: a process that has exited (and been waited for, so its pid is free).
	gone := exec.Command("true")
	require.NoError(t, gone.Run())
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(orphan.Dir), "owner.pid"), []byte(strconv.Itoa(gone.Process.Pid)), 0o644))

	s := pglocal.ForTest(t)

	_, err := os.Stat(filepath.Dir(orphan.Dir))
	require.ErrorIs(t, err, fs.ErrNotExist, "the orphan's files are still there")
	require.False(t, running(postmaster), "the orphan's postmaster (pid %d) still runs", postmaster)
	ctx := context.Background()
	for _, live := range []*pglocal.Server{kept, s} {
		conn, err := pgx.Connect(ctx, live.URL())
		require.NoError(t, err, "a server whose owner lives was stopped")
		require.NoError(t, conn.Ping(ctx))
		require.NoError(t, conn.Close(ctx))
	}
}

// postmasterPID is the pid in the server's postmaster.pid (its first line).
func postmasterPID(t *testing.T, s *pglocal.Server) int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.Dir, "postmaster.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.SplitN(string(raw), "\n", 2)[0])
	require.NoError(t, err)
	return pid
}

// running says whether pid is a live process: a zombie (exited, its parent has not waited for
// it yet) is not.
func running(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	// "pid (comm) state ...": the state follows the last ')'.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) == 0 || fields[0] != "Z"
}
