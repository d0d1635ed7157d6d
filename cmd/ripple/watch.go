package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/uuid"
)

// watchQuery subscribes to a query over the sync socket (docs/protocol.md) as the admin, acting
// as actingAs when set, and prints each new result on its own line until ctx ends. A failed
// query or a lost connection ends it with an error.
func watchQuery(ctx context.Context, e *env, base *url.URL, key, actingAs, path string, args json.RawMessage) error {
	ws := *base
	ws.Scheme = strings.Replace(ws.Scheme, "http", "ws", 1)
	ws.Path = strings.TrimSuffix(ws.Path, "/") + "/api/1.48.0/sync"
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, _, err := websocket.Dial(dialCtx, ws.String(), nil)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return unreachable(base, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(64 << 20)

	auth := map[string]any{"type": "Authenticate", "tokenType": "Admin", "value": key, "baseVersion": 0}
	if actingAs != "" {
		auth["impersonating"] = map[string]string{"subject": actingAs}
	}
	for _, m := range []map[string]any{
		{"type": "Connect", "sessionId": uuid.NewString(), "connectionCount": 0, "lastCloseReason": "InitialConnect", "clientTs": time.Now().UnixMilli()},
		auth,
		{"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": []map[string]any{
			{"type": "Add", "queryId": 0, "udfPath": path, "args": []json.RawMessage{args}},
		}},
	} {
		if err := wsjson.Write(ctx, conn, m); err != nil {
			return watchEnded(ctx, err)
		}
	}

	chunks := map[string][]string{}
	var last json.RawMessage
	for {
		var msg serverMessage
		if err := wsjson.Read(ctx, conn, &msg); err != nil {
			return watchEnded(ctx, err)
		}
		if msg.Type == "TransitionChunk" {
			parts := append(chunks[msg.TransitionID], msg.Chunk)
			if len(parts) < msg.TotalParts {
				chunks[msg.TransitionID] = parts
				continue
			}
			delete(chunks, msg.TransitionID)
			msg = serverMessage{}
			if err := json.Unmarshal([]byte(strings.Join(parts, "")), &msg); err != nil {
				return fmt.Errorf("watch: a chunked transition is not valid JSON: %w", err)
			}
		}
		switch msg.Type {
		case "AuthError":
			return fmt.Errorf("the server refused the admin key: %s", msg.Error)
		case "FatalError":
			return fmt.Errorf("the server closed the subscription: %s", msg.Error)
		case "Transition":
			for _, m := range msg.Modifications {
				if m.QueryID != 0 {
					continue
				}
				switch m.Type {
				case "QueryFailed":
					return &functionError{path: path, code: m.ErrorData.Code, message: m.ErrorMessage}
				case "QueryUpdated":
					if string(m.Value) == string(last) {
						continue // re-run as a new identity with the same result
					}
					last = m.Value
					if err := writeJSONLine(e.stdout, m.Value, ""); err != nil {
						return err
					}
				}
			}
		}
	}
}

// serverMessage is what watchQuery reads of the server's messages.
type serverMessage struct {
	Type          string `json:"type"`
	Error         string `json:"error"`
	Modifications []struct {
		Type         string          `json:"type"`
		QueryID      int64           `json:"queryId"`
		Value        json.RawMessage `json:"value"`
		ErrorMessage string          `json:"errorMessage"`
		ErrorData    struct {
			Code string `json:"code"`
		} `json:"errorData"`
	} `json:"modifications"`
	// TransitionChunk
	Chunk        string `json:"chunk"`
	PartNumber   int    `json:"partNumber"`
	TotalParts   int    `json:"totalParts"`
	TransitionID string `json:"transitionId"`
}

// watchEnded is nil when the user interrupted the watch, else why the socket ended.
func watchEnded(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("watch: lost the connection to the server: %w", err)
}
