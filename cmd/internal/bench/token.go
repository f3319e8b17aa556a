package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

// The token workload signs users in through the token server's endpoint
// (GET /1.0/{app}/{version}, docs/tokenserver.md) the way Firefox does:
// a Bearer FxA access token (RS256 JWT) and X-KeyID. The tokens are minted
// before the run, so the timed loop only sends requests; RSA signing in the
// loop would measure the bench, not the cluster.

// tokenUser is one FxA account of the token workload: the headers of its
// sign-in, built once. Several clients may send the same map at once (the
// Transport only reads it).
type tokenUser struct {
	header http.Header
}

// tokenKeyID is X-KeyID: "<keys_changed_at>-<base64url, unpadded, of the
// client state bytes>".
func tokenKeyID(keysChangedAt int64, clientState []byte) string {
	return strconv.FormatInt(keysChangedAt, 10) + "-" + base64.RawURLEncoding.EncodeToString(clientState)
}

// tokenPath is the token endpoint of service "{app}-{version}":
// /1.0/{app}/{version}. The service name is validated to contain a '-'.
func tokenPath(service string) string {
	app, version, _ := strings.Cut(service, "-")
	return "/1.0/" + app + "/" + version
}

// tokenLifetime outlives the run: a token that expires mid-run would turn
// the rest of it into 401s.
func tokenLifetime(cfg *Config) time.Duration {
	return max(24*time.Hour, cfg.Warmup+cfg.Duration+time.Hour)
}

// newTokenUser mints the access token of a fresh FxA account (random uid;
// generation = keys_changed_at = now in ms, as FxA stamps them) with a
// random 16-byte client state.
func newTokenUser(key *fxa.SigningKey, now time.Time, lifetime time.Duration) (tokenUser, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return tokenUser{}, fmt.Errorf("random uid: %w", err)
	}
	uid, clientState := hex.EncodeToString(raw[:16]), raw[16:]
	ms := now.UnixMilli()
	jwt, err := key.Mint(fxa.Claims{Sub: uid, Scope: fxa.SyncScope, Iat: now.Unix(),
		Exp: now.Add(lifetime).Unix(), Generation: ms, ClientID: "wimms-bench"})
	if err != nil {
		return tokenUser{}, err
	}
	return tokenUser{header: http.Header{
		"Authorization": {"Bearer " + jwt},
		"X-Keyid":       {tokenKeyID(ms, clientState)},
	}}, nil
}

// mintTokenUsers makes cfg.Users accounts' sign-in headers on all cores.
// The accounts are new to the cluster: each one's first sign-in creates its
// user (a Raft write), every later one is the common "known user, nothing
// changed" sign-in.
func mintTokenUsers(ctx context.Context, cfg *Config, progress func(int64)) ([]tokenUser, error) {
	if cfg.TokenKey == nil || cfg.TokenKey.Priv == nil {
		return nil, errors.New("the token workload needs the private key whose JWKS the cluster trusts (--token-jwks-key, or --spawn)")
	}
	users := make([]tokenUser, cfg.Users)
	now, lifetime := time.Now(), tokenLifetime(cfg)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for g := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(users)) {
					return
				}
				u, err := newTokenUser(cfg.TokenKey, now, lifetime)
				if err != nil {
					errs[g] = err
					return
				}
				users[i] = u
				if progress != nil {
					progress(done.Add(1))
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("minting access tokens: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("minting access tokens: %w", err)
	}
	return users, nil
}

// prepareTokenUsers mints the accounts and hands them to every worker.
func prepareTokenUsers(ctx context.Context, cfg *Config, workers []*worker) error {
	cfg.Logger.Info("setup: minting access tokens", "users", cfg.Users)
	var minted atomic.Int64
	stopProgress := startProgress(cfg.Progress, int64(cfg.Users), func() (int64, string) {
		n := minted.Load()
		return n, fmt.Sprintf("setup: %d/%d access tokens", n, cfg.Users)
	})
	users, err := mintTokenUsers(ctx, cfg, func(n int64) { minted.Store(n) })
	stopProgress()
	if err != nil {
		return err
	}
	path := tokenPath(cfg.Service)
	for _, w := range workers {
		w.tokens, w.tokenPath = users, path
	}
	return nil
}

// tokenStep signs a random account in. Accounts are shared by all clients:
// a sign-in never changes an account's keys, so no client's view of one
// can go stale.
func (w *worker) tokenStep() (opKind, client.Answer, error) {
	u := w.tokens[w.rng.IntN(len(w.tokens))]
	r, err := w.rq.GetWithHeader(w.tokenPath, "", u.header, false)
	return kindToken, r, err
}

// tokenServerFiles writes what a spawned cluster's token server needs into
// dir: a fresh signing key's JWKS, a master secret and a metrics-hash
// secret. It returns the key (the bench mints with it) and the members'
// flags.
func tokenServerFiles(dir string) (*fxa.SigningKey, []string, error) {
	key, err := fxa.GenerateKey("wimms-bench")
	if err != nil {
		return nil, nil, err
	}
	jwks := filepath.Join(dir, "fxa-jwks.json")
	master := filepath.Join(dir, "master.secret")
	hash := filepath.Join(dir, "metrics-hash.secret")
	files := map[string][]byte{jwks: fxa.JWKS(key)}
	for _, f := range []string{master, hash} {
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, nil, fmt.Errorf("random secret: %w", err)
		}
		files[f] = []byte(hex.EncodeToString(raw[:]) + "\n")
	}
	for name, data := range files {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			return nil, nil, fmt.Errorf("token server files: %w", err)
		}
	}
	return &key, []string{"--fxa-jwks-file", jwks, "--master-secret-file", master, "--metrics-hash-secret-file", hash}, nil
}
