package fxa

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultJWKSRefresh is the least time between two fetches of a remote
// JWKS: a flood of tokens naming unknown kids costs FxA one request a
// minute per member.
const DefaultJWKSRefresh = time.Minute

// RemoteJWKS fetches FxA's keys from {OAuth server}/v1/jwks: on first
// use, and again when a token names a kid it does not hold, at most once
// per MinRefresh. A failed fetch keeps the keys it had.
type RemoteJWKS struct {
	url        string
	client     *http.Client
	minRefresh time.Duration
	now        func() time.Time
	onError    func(error)

	mu      sync.Mutex
	keys    []Key
	fetched time.Time // of the last attempt, successful or not
	tried   bool
	lastErr error
}

// NewRemoteJWKS reads keys from oauthServerURL + "/v1/jwks". onError (may
// be nil) hears about every failed fetch.
func NewRemoteJWKS(oauthServerURL string, client *http.Client, onError func(error)) *RemoteJWKS {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &RemoteJWKS{url: strings.TrimRight(oauthServerURL, "/") + "/v1/jwks", client: client,
		minRefresh: DefaultJWKSRefresh, now: time.Now, onError: onError}
}

// Keys gives the keys held, fetching them the first time.
func (r *RemoteJWKS) Keys() ([]Key, error) { return r.KeysFor(context.Background(), "") }

// KeysFor gives the keys held, fetching first when none are held or kid
// names none of them, unless the last fetch was less than MinRefresh ago.
// The lock is held across the fetch so concurrent sign-ins wait for one
// fetch instead of each making their own.
func (r *RemoteJWKS) KeysFor(ctx context.Context, kid string) ([]Key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	known := slices.ContainsFunc(r.keys, func(k Key) bool { return k.ID == kid })
	need := r.keys == nil || (kid != "" && !known)
	if need && (!r.tried || r.now().Sub(r.fetched) >= r.minRefresh) {
		r.tried, r.fetched = true, r.now()
		// Not the caller's cancellation: a client that hangs up must not
		// leave every member without keys for a minute. The HTTP client's
		// timeout bounds the fetch.
		keys, err := r.fetch(context.WithoutCancel(ctx))
		if err != nil {
			r.lastErr = err
			if r.onError != nil {
				r.onError(err)
			}
		} else {
			r.keys, r.lastErr = keys, nil
		}
	}
	if r.keys == nil {
		if r.lastErr == nil {
			return nil, errors.New("jwks: no keys fetched yet")
		}
		return nil, r.lastErr
	}
	return r.keys, nil
}

func (r *RemoteJWKS) fetch(ctx context.Context) ([]Key, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", r.url, err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", r.url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
	if err != nil {
		return nil, fmt.Errorf("jwks %s: read: %w", r.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks %s: status %d", r.url, resp.StatusCode)
	}
	keys, err := ParseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", r.url, err)
	}
	return keys, nil
}
