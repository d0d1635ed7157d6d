package replicas

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseLSN(t *testing.T) {
	l, err := ParseLSN("1A/3016210")
	require.NoError(t, err)
	require.Equal(t, LSN(0x1A<<32|0x3016210), l)
	require.Equal(t, "1A/3016210", l.String())
	_, err = ParseLSN("nope")
	require.Error(t, err)
}

// A position just past a page header is the page's start to a standby; any other is kept.
func TestPageStart(t *testing.T) {
	s := &Set{segSize: 16 << 20}
	require.Equal(t, LSN(0x3016000), s.pageStart(0x3016018))                         // short header
	require.Equal(t, LSN(0x3000000), s.pageStart(0x3000028))                         // long header, segment start
	require.Equal(t, LSN(0x3016028), s.pageStart(0x3016028))                         // 40 into a page that is not a segment's first
	require.Equal(t, LSN(0x3016210), s.pageStart(0x3016210))                         // mid-page
	require.Equal(t, LSN(0x3000018), s.pageStart(0x3000018))                         // 24 into a segment's first page: a record's end
	require.Equal(t, LSN(0x4000000), (&Set{segSize: 64 << 20}).pageStart(0x4000028)) // 64 MB segments
}

// On a standby the exported snapshot lists the running xids under sxp; pg_current_snapshot()
// leaves them out (the text below is what PostgreSQL 15 printed for a standby with xid 728
// running on the primary).
func TestExactSnapshot(t *testing.T) {
	exported := "vxid:2/14\npid:20875\ndbid:5\niso:2\nro:1\nxmin:728\nxmax:730\nxcnt:0\nsof:0\nsxcnt:1\nsxp:728\nrec:1\n"
	snap, text, err := ExactSnapshot("728:730:", exported, true)
	require.NoError(t, err)
	require.Equal(t, "728:730:728", text)
	require.False(t, snap.Sees(728), "a transaction running on the primary looked visible")
	require.True(t, snap.Sees(729))
	require.True(t, snap.Sees(727))
	require.False(t, snap.Sees(730))

	_, _, err = ExactSnapshot("728:730:", exported, false)
	require.ErrorContains(t, err, "promoted")
	_, _, err = ExactSnapshot("728:731:", exported, true)
	require.Error(t, err, "a file from another snapshot")
	_, _, err = ExactSnapshot("728:730:", "xmin:728\n", true)
	require.Error(t, err)

	// 64-bit xids: the file's 32-bit ones are widened below xmax, across an epoch boundary.
	exported = "xmin:4294967290\nxmax:5\nxcnt:0\nsof:0\nsxcnt:2\nsxp:4294967291\nsxp:3\nrec:1\n"
	snap, text, err = ExactSnapshot("12884901882:12884901893:", exported, true)
	require.NoError(t, err)
	require.Equal(t, "12884901882:12884901893:12884901883,12884901891", text)
	require.False(t, snap.Sees(12884901883))
	require.False(t, snap.Sees(12884901891))
	require.True(t, snap.Sees(12884901892))
}
