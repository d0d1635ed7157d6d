package progress

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPlainLines(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	b := New(&out, "exporting messages", 5000, Rows)
	require.Nil(t, b.bar, "a buffer is not a terminal")
	b.Add(1200)
	// The periodic line as it would read 10 s in: 120 rows/s, 3800 rows to go.
	require.Equal(t, "exporting messages: 1200/5000 rows (24%), 120 rows/s, ETA 32s", b.line(b.start.Add(10*time.Second)))
	b.Add(3800)
	b.Finish()
	b.Finish()
	require.Regexp(t, `^exporting messages: 5000 rows done in \S+\n$`, out.String(), "one last line, once")

	bytesBar := New(&out, "verifying checksums", 3<<20, Bytes)
	bytesBar.Add(1 << 20)
	require.Equal(t, "verifying checksums: 1.0 Mi/3.0 MiB (33%), 1.0 MiB/s, ETA 2s", bytesBar.line(bytesBar.start.Add(time.Second)))

	unknown := New(&out, "seeding", -1, Messages)
	unknown.Add(10)
	require.Equal(t, "seeding: 10 messages, 5 messages/s", unknown.line(unknown.start.Add(2*time.Second)))
}

func TestNilBarIsQuiet(t *testing.T) {
	t.Parallel()
	b := New(nil, "anything", 10, Rows)
	require.Nil(t, b)
	b.Add(3)
	b.Finish()
	b.Stop()
}
