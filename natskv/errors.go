package natskv

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slipstream-kv/slipstream"
)

// Errors of this package. Each is returned wrapped together with the
// slipstream sentinel that classifies it, so callers that only know the
// root package still match with errors.Is.
var (
	// ErrConnectionFailed is returned by [Dial] when the credentials are
	// unusable or no server could be reached.
	ErrConnectionFailed = errors.New("natskv: connection failed")
	// ErrBucketNotFound is returned by [Open] with Config.NoCreate when the
	// bucket does not exist. It wraps with slipstream.ErrOperationFailed.
	ErrBucketNotFound = errors.New("natskv: bucket not found")
	// ErrInvalidBucketName is returned by [Open] for a bucket name that the
	// client or the server refuses.
	ErrInvalidBucketName = errors.New("natskv: invalid bucket name")
	// ErrBucketFull is returned by writes to a discard-new bucket that
	// reached its MaxBytes (server error 10077). It wraps with
	// slipstream.ErrOperationFailed.
	ErrBucketFull = errors.New("natskv: bucket full (maximum bytes exceeded)")
	// ErrValueTooLarge is returned by writes whose value exceeds the
	// server's maximum payload or the bucket's maximum value size. It wraps
	// with slipstream.ErrOperationFailed.
	ErrValueTooLarge = errors.New("natskv: value too large")
	// ErrShortListing is returned by [Bucket.Keys] and [Bucket.Scan] when
	// the listing saw fewer keys than the stream's own per-subject count
	// says exist: a short listing would make a resync delete live keys. It
	// wraps with slipstream.ErrOperationFailed.
	ErrShortListing = errors.New("natskv: key listing is shorter than the stream's subject count")
	// ErrStreamRecreated marks a bucket whose stream was deleted and
	// recreated (its creation time changed) or restored from an older copy
	// (its last sequence went below what was delivered). A listing during
	// which it happened fails with it (wrapped with
	// slipstream.ErrOperationFailed: what it saw mixes two streams); a
	// running watch that notices it ends with it (wrapped with
	// slipstream.ErrWatch, so the restart's resume resyncs); a resume on a
	// stream created at another time than the one the Bucket was bound to or
	// last state-synced from fails with it (wrapped with
	// slipstream.ErrCursorExpired).
	ErrStreamRecreated = errors.New("natskv: the bucket's stream was recreated")
	// ErrTTLDisabled is returned by [Bucket.PutTTL] on a bucket created
	// without per-key TTLs (Config.AllowTTL), or on a server that has none.
	// It wraps with slipstream.ErrUnsupported.
	ErrTTLDisabled = errors.New("natskv: per-key TTLs not enabled on the bucket (AllowTTL)")
)

// JetStream error codes this package classifies.
const (
	codeStreamNameInUse     = 10058 // stream name already in use (with a different config)
	codeStoreFailed         = 10077 // store failed; "maximum bytes exceeded" at capacity
	codeWrongLastSeq        = 10071 // CAS conflict, R1
	codeWrongLastSeqR3      = 10164 // CAS conflict, replicated streams
	codeMessageTTLInvalid   = 10165
	codeMessageTTLDisabled  = 10166
	codeStreamInvalidConfig = 10052
)

// mapErr translates an error from an operation bounded by [Bucket.opContext]
// onto the slipstream sentinels. The caller's own cancellation (or deadline)
// yields ctx.Err(); our deadline yields slipstream.ErrTimeout.
func mapErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", op, cerr)
	}
	var apiErr *jetstream.APIError
	isAPI := errors.As(err, &apiErr)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w: %s: %w", slipstream.ErrTimeout, op, err)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return fmt.Errorf("%w: %s: %w", slipstream.ErrInvalidKey, op, err)
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w: %w: %s: %w", slipstream.ErrOperationFailed, ErrValueTooLarge, op, err)
	case isAPI && apiErr.ErrorCode == codeStoreFailed && strings.Contains(apiErr.Description, "maximum bytes"):
		return fmt.Errorf("%w: %w: %s: %w", slipstream.ErrOperationFailed, ErrBucketFull, op, err)
	case isAPI && strings.Contains(apiErr.Description, "message size exceeds maximum"):
		return fmt.Errorf("%w: %w: %s: %w", slipstream.ErrOperationFailed, ErrValueTooLarge, op, err)
	}
	return fmt.Errorf("%w: %s: %w", slipstream.ErrOperationFailed, op, err)
}

// isCASConflict reports a wrong-last-sequence error, under either of the
// codes the server uses (10071 on R1 streams, 10164 on replicated ones).
func isCASConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == codeWrongLastSeq || apiErr.ErrorCode == codeWrongLastSeqR3)
}

// cursorExpiredNeedles are matched, case-insensitively, against errors from
// creating a resume consumer: a second line of defence for servers or paths
// that do report a start below the first sequence (the pinned server clamps
// silently instead). Biased towards true: a false positive costs one resync.
var cursorExpiredNeedles = [...]string{"start sequence", "first sequence", "sequence not found", "too old"}

// looksCursorExpired reports whether text reads like a compacted-cursor error.
func looksCursorExpired(text string) bool {
	text = strings.ToLower(text)
	for _, n := range cursorExpiredNeedles {
		if strings.Contains(text, n) {
			return true
		}
	}
	return false
}
