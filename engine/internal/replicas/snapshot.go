package replicas

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ripplehq/ripple/engine/internal/changefeed"
)

// SnapshotColumns are read in a replica's read-only REPEATABLE READ transaction, as its first
// statement, to learn its exact snapshot (ExactSnapshot).
//
// pg_current_snapshot() alone is wrong on a standby: a snapshot taken during recovery keeps
// every running xid in its subxip array and leaves xip empty (procarray.c, GetSnapshotData), and
// pg_current_snapshot() reports xip only, so a transaction still running on the primary would
// look visible. The snapshot exported to a file (pg_export_snapshot, the file holds both arrays
// and is removed when the transaction ends) is complete; reading it needs pg_read_file, which a
// superuser has and another role gets with GRANT EXECUTE ON FUNCTION pg_read_file(text).
const SnapshotColumns = "pg_current_snapshot()::text, pg_read_file('pg_snapshots/' || pg_export_snapshot()), pg_is_in_recovery()"

// ExactSnapshot builds the replica snapshot from pg_current_snapshot()'s text (for the 64-bit
// xmin and xmax) and the exported snapshot file (for the running xids, 32-bit), and returns it
// with a canonical text form ("xmin:xmax:xip,..." sorted), comparable with the primary's.
func ExactSnapshot(current, exported string, recovering bool) (changefeed.Snapshot, string, error) {
	if !recovering {
		// A promoted replica has its own history from the promotion on: the primary's change
		// stream says nothing about it.
		return changefeed.Snapshot{}, "", errors.New("the replica is not in recovery (promoted)")
	}
	snap, ok := changefeed.ParseSnapshot(current)
	if !ok {
		return changefeed.Snapshot{}, "", fmt.Errorf("unreadable snapshot %q", current)
	}
	var xmin32, xmax32 uint64
	seen := map[string]bool{}
	for _, line := range strings.Split(exported, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		seen[key] = true
		switch key {
		case "xmin", "xmax", "xip", "sxp":
			x, err := strconv.ParseUint(value, 10, 32)
			if err != nil {
				return changefeed.Snapshot{}, "", fmt.Errorf("unreadable exported snapshot line %q", line)
			}
			switch key {
			case "xmin":
				xmin32 = x
			case "xmax":
				xmax32 = x
			default:
				snap.InProgress[widen(x, snap.Xmax)] = struct{}{}
			}
		}
	}
	if !seen["xmin"] || !seen["xmax"] || !seen["rec"] {
		return changefeed.Snapshot{}, "", errors.New("unreadable exported snapshot (no xmin, xmax or rec)")
	}
	// Both were read from the same snapshot: they must agree.
	if xmin32 != snap.Xmin&0xFFFFFFFF || xmax32 != snap.Xmax&0xFFFFFFFF {
		return changefeed.Snapshot{}, "", fmt.Errorf("exported snapshot %d:%d differs from %q", xmin32, xmax32, current)
	}
	return snap, Canonical(snap), nil
}

// widen turns a 32-bit xid of a snapshot into its 64-bit form: the running xids lie within 2^31
// below the snapshot's xmax.
func widen(x, xmax uint64) uint64 {
	full := xmax&^0xFFFFFFFF | x
	if full > xmax {
		full -= 1 << 32
	}
	return full
}

// Canonical is a snapshot's text form with its running xids sorted, as pg_current_snapshot()
// prints it on a primary.
func Canonical(s changefeed.Snapshot) string {
	xips := make([]uint64, 0, len(s.InProgress))
	for x := range s.InProgress {
		xips = append(xips, x)
	}
	slices.Sort(xips)
	parts := make([]string, len(xips))
	for i, x := range xips {
		parts[i] = strconv.FormatUint(x, 10)
	}
	return strconv.FormatUint(s.Xmin, 10) + ":" + strconv.FormatUint(s.Xmax, 10) + ":" + strings.Join(parts, ",")
}
