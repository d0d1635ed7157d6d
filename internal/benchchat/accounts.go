package benchchat

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sign-ups are rate limited per client address (20 per hour by default). All of 127.0.0.0/8
// is this machine, so the bench spreads its sign-ups over loopback source addresses, at most
// signUpsPerAddress each, starting at a random one so repeated runs against one server do not
// collide. Sockets are spread the same way: one source address has ~28k ephemeral ports.
const signUpsPerAddress = 19

// loopbackPool hands out 127.x.y.z source addresses.
type loopbackPool struct {
	base uint32
	next atomic.Uint32
}

func newLoopbackPool() *loopbackPool {
	return &loopbackPool{base: 1 + rand.Uint32N(1<<22)}
}

func (p *loopbackPool) take() net.IP {
	n := p.base + p.next.Add(1)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	// Keep the last octet in 1..250 (no .0 or .255 look-alikes).
	return net.IPv4(127, b[1], b[2], 1+b[3]%250)
}

// boundClient is an HTTP client whose connections leave from ip.
func boundClient(ip net.IP) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}}
}

// account is a signed-up user.
type account struct {
	index  int
	email  string
	userID string
	token  string
	// refresh is the refresh token of the sign-up's session.
	refresh string
	convID  string // the direct conversation this account chats in (with its partner)
}

// apiClient talks HTTP to the server under test.
type apiClient struct {
	base  string
	addrs *loopbackPool
}

type authResponse struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
	User         struct {
		ID json.RawMessage `json:"_id"`
	} `json:"user"`
}

// signUp creates n accounts with real email+password sign-ups.
func (a *apiClient) signUp(ctx context.Context, n int, tag string) ([]*account, error) {
	out := make([]*account, n)
	g, gctx := newGroup(ctx, 4)
	// Each group of signUpsPerAddress shares a source address; a few groups at once (argon2id
	// hashing makes each sign-up cost the server real CPU).
	for start := 0; start < n; start += signUpsPerAddress {
		client := boundClient(a.addrs.take())
		end := min(n, start+signUpsPerAddress)
		g.Go(func() error {
			defer client.CloseIdleConnections()
			for i := start; i < end; i++ {
				email := fmt.Sprintf("%s-%d@bench.example", tag, i)
				var resp authResponse
				body := map[string]string{"email": email, "password": "bench-password-" + tag, "name": fmt.Sprintf("Bench %s %d", tag, i)}
				if err := postJSON(gctx, client, a.base+"/api/auth/signup", "", body, &resp); err != nil {
					return fmt.Errorf("signing up %s: %w", email, err)
				}
				id := strings.Trim(string(resp.User.ID), `"`)
				if id == "" || resp.AccessToken == "" {
					return fmt.Errorf("signing up %s: unexpected response", email)
				}
				out[i] = &account{index: i, email: email, userID: id, token: resp.AccessToken, refresh: resp.RefreshToken}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// signUpPairs signs up n accounts tagged tag and pairs them up as pairUp does.
func (a *apiClient) signUpPairs(ctx context.Context, n int, tag string) ([]*account, error) {
	accts, err := a.signUp(ctx, n, tag+randomHex(4))
	if err != nil {
		return nil, err
	}
	if err := a.pairUp(ctx, accts); err != nil {
		return nil, err
	}
	return accts, nil
}

// pairUp opens the direct conversation of accounts 2k and 2k+1 (conversations:getOrCreateDirect
// over the HTTP function API, as the first send of a new chat would).
func (a *apiClient) pairUp(ctx context.Context, accounts []*account) error {
	client := boundClient(a.addrs.take())
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	g, gctx := newGroup(ctx, 8)
	for k := 0; k+1 < len(accounts); k += 2 {
		x, y := accounts[k], accounts[k+1]
		g.Go(func() error {
			var resp struct {
				Status       string `json:"status"`
				Value        string `json:"value"`
				ErrorMessage string `json:"errorMessage"`
			}
			body := map[string]any{"path": "conversations:getOrCreateDirect", "format": "convex_encoded_json", "args": []any{map[string]string{"email": y.email}}}
			if err := postJSON(gctx, client, a.base+"/api/mutation", x.token, body, &resp); err != nil {
				return fmt.Errorf("conversations:getOrCreateDirect: %w", err)
			}
			if resp.Status != "success" || resp.Value == "" {
				return fmt.Errorf("conversations:getOrCreateDirect: %s", resp.ErrorMessage)
			}
			mu.Lock()
			x.convID, y.convID = resp.Value, resp.Value
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// direct opens (or finds) the direct conversation of x and y, as x.
func (a *apiClient) direct(ctx context.Context, x, y *account) (string, error) {
	client := boundClient(a.addrs.take())
	defer client.CloseIdleConnections()
	var resp struct {
		Status       string `json:"status"`
		Value        string `json:"value"`
		ErrorMessage string `json:"errorMessage"`
	}
	body := map[string]any{"path": "conversations:getOrCreateDirect", "format": "convex_encoded_json", "args": []any{map[string]string{"email": y.email}}}
	if err := postJSON(ctx, client, a.base+"/api/mutation", x.token, body, &resp); err != nil {
		return "", fmt.Errorf("conversations:getOrCreateDirect: %w", err)
	}
	if resp.Status != "success" || resp.Value == "" {
		return "", fmt.Errorf("conversations:getOrCreateDirect: %s", resp.ErrorMessage)
	}
	return resp.Value, nil
}

func postJSON(ctx context.Context, client *http.Client, url, token string, body, out any) error {
	buf, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(buf))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != 560 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	return json.Unmarshal(raw, out)
}

// group runs functions with bounded concurrency and keeps the first error (errgroup, which
// this module only has indirectly).
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

func newGroup(ctx context.Context, limit int) (*group, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &group{ctx: ctx, cancel: cancel, sem: make(chan struct{}, limit)}, ctx
}

func (g *group) Go(f func() error) {
	g.sem <- struct{}{}
	g.wg.Add(1)
	go func() {
		defer func() { <-g.sem; g.wg.Done() }()
		if err := f(); err != nil {
			g.once.Do(func() { g.err = err; g.cancel() })
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}
