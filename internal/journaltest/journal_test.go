package journaltest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/internal/churn"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/internal/poll"
	"github.com/slipstream-kv/slipstream/natskv"
)

const (
	bucketName = "journal"
	scopePfx   = "in."
	envChild   = "SLIPSTREAM_JOURNAL_CHILD"
	envURL     = "SLIPSTREAM_JOURNAL_NATS"
	envDir     = "SLIPSTREAM_JOURNAL_DIR"
	envKills   = "SLIPSTREAM_JOURNAL_KILLS"
)

// TestJournalChild is the consumer process. It only runs when re-executed by
// TestInvariantSurvivesSIGKILL.
func TestJournalChild(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("child process of TestInvariantSurvivesSIGKILL; runs only when re-executed by it")
	}
	if err := runChild(os.Getenv(envURL), os.Getenv(envDir)); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
}

func runChild(url, dir string) error {
	ctx := context.Background()
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	b, err := natskv.Open(ctx, nc, natskv.Config{Bucket: bucketName, History: 64, MaxBytes: -1})
	if err != nil {
		return err
	}
	fold, err := applog.Open(filepath.Join(dir, "fold"), nil)
	if err != nil {
		return err
	}
	journal, err := os.OpenFile(filepath.Join(dir, "journal"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	f := slipstream.NewFollower(b, func(ctx context.Context, batch []slipstream.Update) error {
		var sb strings.Builder
		for _, u := range batch {
			rev, ok := u.Version.Uint64()
			if !ok {
				continue // synthetic resync deletes carry no revision
			}
			fmt.Fprintf(&sb, "%d\n", rev)
		}
		// One write(2) per batch: it reaches the page cache before Apply
		// returns, so it survives SIGKILL.
		_, err := journal.WriteString(sb.String())
		return err
	})
	f.Scope = slipstream.Prefix(scopePfx)
	f.Store, f.Lister = fold, b
	f.Resume = fold.Cursor()
	f.MaxBatchSize = 1 + rand.IntN(20)
	f.MaxBatchDelay = time.Duration(rand.IntN(5)) * time.Millisecond
	_, err = f.Run(ctx)
	return err
}

// TestInvariantSurvivesSIGKILL kills the consumer at random moments while
// writes keep arriving, and checks the invariant after every kill.
func TestInvariantSurvivesSIGKILL(t *testing.T) {
	kills := 6
	if s := os.Getenv(envKills); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s=%q: %v", envKills, s, err)
		}
		kills = n
	}
	srv := natstest.Start(t)
	nc := srv.Conn(t)
	ctx := t.Context()
	b, err := natskv.Open(ctx, nc, natskv.Config{Bucket: bucketName, History: 64, MaxBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	// The first run must persist a cursor before churn starts: a run without
	// a cursor is a state-sync watch, which by design delivers only the
	// latest revision of each key.
	if _, err := b.Put(ctx, scopePfx+"seed", []byte("0")); err != nil {
		t.Fatal(err)
	}
	child := startChild(t, srv.URL(), dir)
	poll.True(t, 20*time.Second, "the first run persists a cursor", func() bool { return foldCursor(t, dir) > 0 })
	kill(t, child)

	churnCtx, stopChurn := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var churnErr error
	// Inside and outside the scope, each key well under the bucket's
	// history so that nothing is evicted.
	gen := churn.Generator{
		Key: func(rng *rand.Rand) string {
			pfx := scopePfx
			if rng.IntN(3) == 0 {
				pfx = "out."
			}
			return fmt.Sprintf("%sk%02d", pfx, rng.IntN(40))
		},
		PerKey: 50,
		Pace:   3 * time.Millisecond,
	}
	wg.Go(func() { _, churnErr = gen.Run(churnCtx, b) })

	for i := range kills {
		child := startChild(t, srv.URL(), dir)
		time.Sleep(time.Duration(100+rand.IntN(700)) * time.Millisecond)
		kill(t, child)
		checkInvariant(t, ctx, nc, dir, i)
	}
	stopChurn()
	wg.Wait()
	if churnErr != nil {
		t.Fatalf("churn: %v", churnErr)
	}
	// A last run catches up completely; the invariant still holds.
	child = startChild(t, srv.URL(), dir)
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	poll.True(t, 30*time.Second, "the fold catches up with the scope", func() bool { return foldCursor(t, dir) >= lastInScope(t, ctx, nc, st.LastSeq) })
	kill(t, child)
	checkInvariant(t, ctx, nc, dir, kills)
}

func startChild(t *testing.T, url, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestJournalChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"=1", envURL+"="+url, envDir+"="+dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	return cmd
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill child: %v", err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return
		}
	}
	t.Fatalf("child ended on its own before the kill: %v", err)
}

// foldCursor reads the persisted cursor of the fold (the child is dead or
// holds it; read-only access never rewrites the file).
func foldCursor(t *testing.T, dir string) uint64 {
	t.Helper()
	fold, err := applog.OpenReadOnly(filepath.Join(dir, "fold"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatalf("open fold: %v", err)
	}
	defer fold.Close()
	return fold.Cursor().Rank()
}

func journalRevisions(t *testing.T, dir string) map[uint64]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatalf("open journal: %v", err)
	}
	defer f.Close()
	revs := map[uint64]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rev, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			// A torn last line is impossible with one write per batch, but a
			// half line would only under-report, never hide a violation.
			continue
		}
		revs[rev] = true
	}
	return revs
}

// streamRevisions lists the revisions of every retained in-scope record up
// to upTo, straight from the stream.
func streamRevisions(t *testing.T, ctx context.Context, nc *nats.Conn, upTo uint64) []uint64 {
	t.Helper()
	if upTo == 0 {
		return nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, "KV_"+bucketName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"$KV." + bucketName + "." + scopePfx + ">"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	var revs []uint64
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 {
			return revs
		}
		batch, err := cons.FetchNoWait(int(min(info.NumPending, 1000)))
		if err != nil {
			t.Fatal(err)
		}
		for msg := range batch.Messages() {
			md, err := msg.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if md.Sequence.Stream > upTo {
				return revs
			}
			revs = append(revs, md.Sequence.Stream)
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
	}
}

func lastInScope(t *testing.T, ctx context.Context, nc *nats.Conn, upTo uint64) uint64 {
	revs := streamRevisions(t, ctx, nc, upTo)
	if len(revs) == 0 {
		return 0
	}
	return revs[len(revs)-1]
}

func checkInvariant(t *testing.T, ctx context.Context, nc *nats.Conn, dir string, round int) {
	t.Helper()
	cursor := foldCursor(t, dir)
	journal := journalRevisions(t, dir)
	revs := streamRevisions(t, ctx, nc, cursor)
	var missing []uint64
	for _, r := range revs {
		if !journal[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("round %d: persisted cursor %d claims in-scope revisions the consumer never applied: %v", round, cursor, missing)
	}
	t.Logf("round %d: cursor %d, %d in-scope revisions ≤ cursor all journaled (%d journal lines)", round, cursor, len(revs), len(journal))
}
