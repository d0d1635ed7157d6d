package functions

import (
	"errors"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/queries"
)

// User is a user as clients see it.
type User struct {
	ID    string `json:"_id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

func registerUsers(reg *engine.Registry) {
	engine.AddQuery(reg, "users:me", usersMe, nil)
}

// usersMe returns the signed-in user, or null for an anonymous caller.
func usersMe(ctx *engine.QueryCtx, _ struct{}) (*User, error) {
	if ctx.Identity().Anonymous() {
		return nil, nil
	}
	id, err := strconv.ParseInt(ctx.Identity().UserID, 10, 64)
	if err != nil {
		return nil, nil
	}
	u, err := queries.New().UserGet(ctx, ctx.DB(), id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &User{ID: strconv.FormatInt(u.ID, 10), Name: u.Name, Email: u.Email}, nil
}
