package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/fnv"
	"net/http"
	"sort"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

// FxA's account events (POST /1.0/webhooks/fxa/events), as Mozilla's
// token server takes them: FxA posts a Security Event Token as the bearer
// token; a delete-user event retires the user, a password-change event
// raises the generation to changeTime - 1, any other is dropped.
const (
	routeFxAEvents = "fxa-events"
	pathFxAEvents  = "/1.0/webhooks/fxa/events"
)

// EventReceiver is a TokenIssuer that also verifies FxA's Security Event
// Tokens (tokenserver.Issuer implements it).
type EventReceiver interface {
	// WebhookEnabled: whether events are taken, and whether only counted.
	WebhookEnabled() (enabled, metricsOnly bool)
	// VerifyEvent checks a SET; refusals wrap fxa.ErrInvalidCredentials.
	VerifyEvent(ctx context.Context, token string) (fxa.SET, error)
}

// webhookEvent is one event's label in metrics and logs.
func webhookEvent(uri string) string {
	switch uri {
	case fxa.EventDeleteUser:
		return "delete-user"
	case fxa.EventPasswordChange:
		return "password-change"
	}
	return "other"
}

func (s *Server) webhookRoutes() []route {
	er, ok := s.tokens.(EventReceiver)
	if !ok {
		return nil
	}
	if enabled, _ := er.WebhookEnabled(); !enabled {
		return nil
	}
	// kindControl: the Router places it on the leader, and the event's own
	// id, not a client's Idempotency-Key, makes it apply once.
	return []route{{name: routeFxAEvents, method: http.MethodPost, path: pathFxAEvents, access: accessOpen,
		kind: kindControl, handle: s.fxaEvents, subject: subjectUser}}
}

// fxaEvents applies each event of a verified SET as one account-event
// command through Raft, keyed by the token's id and the event type, so a
// redelivery (FxA retries until it gets a 2xx) changes nothing again.
// The answer is sent once every event has committed.
func (s *Server) fxaEvents(rq *request) {
	er := s.tokens.(EventReceiver)
	token, desc := bearerTokenOf(rq.r.Header.Values("Authorization"))
	if desc != "" {
		rq.tsUnauthorized(tsStatusError, desc)
		return
	}
	set, err := er.VerifyEvent(rq.r.Context(), token)
	if err != nil {
		if errors.Is(err, fxa.ErrInvalidCredentials) {
			s.log.Info("FxA event refused", "reason", err)
			rq.tsUnauthorized(StatusInvalidCredentials, tsDescUnauthorized)
			return
		}
		s.log.Warn("verifying an FxA event failed", "error", err)
		rq.tsError(http.StatusServiceUnavailable, StatusFxAUnavailable, LocationBody, "", tsDescUnavailable)
		return
	}
	_, metricsOnly := er.WebhookEnabled()
	email := set.Sub + "@" + s.tokens.EmailDomain()
	types := make([]string, 0, len(set.Events))
	for t := range set.Events {
		types = append(types, t)
	}
	sort.Strings(types)
	outcomes := map[string]string{}
	for _, t := range types {
		label := webhookEvent(t)
		outcome := s.applyFxAEvent(rq, set, t, email, metricsOnly)
		if outcome == "" {
			return // answered already: the event could not be applied
		}
		s.metrics.webhookEvents.WithLabelValues(label, outcome).Inc()
		outcomes[t] = outcome
	}
	rq.writeJSON(http.StatusOK, map[string]any{"events": outcomes})
}

// applyFxAEvent returns the event's outcome, or "" when it has answered
// the request with an error.
func (s *Server) applyFxAEvent(rq *request, set fxa.SET, eventType, email string, metricsOnly bool) string {
	label := webhookEvent(eventType)
	if metricsOnly {
		return "counted"
	}
	cmd := fsm.Command{Op: fsm.OpAccountEvent, Email: email}
	switch eventType {
	case fxa.EventDeleteUser:
		cmd.Event = fsm.EventDelete
	case fxa.EventPasswordChange:
		var p struct {
			ChangeTime *int64 `json:"changeTime"`
		}
		if json.Unmarshal(set.Events[eventType], &p) != nil || p.ChangeTime == nil || *p.ChangeTime < 1 {
			// Mozilla's server acts only on a password change that says when.
			s.log.Info("dropping an FxA password-change event without changeTime", "jti", set.ID)
			return "dropped"
		}
		// changeTime is in milliseconds, like FxA's generation; the state
		// machine raises the generation to changeTime - 1.
		cmd.Event = fsm.EventPasswordChange
		cmd.Generation = fsm.SomeInt64(*p.ChangeTime)
	default:
		s.log.Info("dropping an unhandled FxA event", "event", eventType, "jti", set.ID)
		return "dropped"
	}
	if checkEmail(email) != "" {
		s.log.Warn("dropping an FxA event whose subject cannot form an email", "event", label, "jti", set.ID)
		return "dropped"
	}
	cmd.IdempotencyKey = fxaEventKey(set.ID, label)
	h := fnv.New64a()
	_, _ = h.Write([]byte(email + "\x00" + eventType + "\x00"))
	_, _ = h.Write(set.Events[eventType])
	cmd.RequestHash = h.Sum64()
	res, ok := rq.apply(cmd)
	if !ok {
		return ""
	}
	s.log.Info("applied an FxA event", "event", label, "jti", set.ID, "changed", res.Count, "repeated", res.Repeated)
	if res.Repeated {
		return "repeated"
	}
	return "applied"
}

// fxaEventKey is the idempotency key of one event of a SET: printable and
// within the state machine's 128 bytes whatever the jti holds.
func fxaEventKey(id, label string) string {
	key := "fxa-set:" + label + ":" + id
	ok := len(key) <= 128
	for i := 0; ok && i < len(key); i++ {
		ok = key[i] > 0x20 && key[i] < 0x7f
	}
	if ok {
		return key
	}
	sum := sha256.Sum256([]byte(id))
	return "fxa-set:" + label + ":sha256:" + hex.EncodeToString(sum[:])
}
