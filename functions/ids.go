package functions

import (
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ripplehq/ripple/engine"
)

// IDs are bigints in Postgres and strings on the wire.

func formatID(id int64) string { return strconv.FormatInt(id, 10) }

func parseID(field, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, engine.InvalidArgument("argument %q is not a valid ID", field)
	}
	return id, nil
}

// callerID is the signed-in user's ID, or UNAUTHENTICATED.
func callerID(ctx engine.IdentityHolder) (int64, error) {
	userID, err := engine.RequireAuth(ctx)
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(userID, 10, 64)
	if err != nil {
		return 0, engine.Unauthenticated("sign in to do this")
	}
	return id, nil
}

// millis is a timestamp as Convex-style float64 milliseconds since the epoch.
func millis(t pgtype.Timestamptz) float64 {
	if !t.Valid {
		return 0
	}
	return float64(t.Time.UnixMicro()) / 1000
}
