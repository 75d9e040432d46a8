package fleet_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/fleet"
	"github.com/slipstream-kv/slipstream/internal/natstest"
	"github.com/slipstream-kv/slipstream/memkv"
	"github.com/slipstream-kv/slipstream/natskv"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/mem"
	"github.com/slipstream-kv/slipstream/objstore/natsobj"
	"github.com/slipstream-kv/slipstream/objstore/objstoretest"
)

// natsFixture is an embedded server with a bucket, a lease bucket and a
// NATS object store transport.
type natsFixture struct {
	srv    *natstest.Server
	bucket *natskv.Bucket
	leases *natskv.Bucket
	tr     *objstore.Transport
}

func newNATSFixture(t *testing.T) *natsFixture {
	t.Helper()
	srv := natstest.Start(t)
	nc := srv.Conn(t)
	b, err := natskv.Open(t.Context(), nc, natskv.Config{Bucket: "routes", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	leases, err := natskv.Open(t.Context(), nc, natskv.Config{Bucket: "leases", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := natsobj.Open(t.Context(), nc, natsobj.Config{Bucket: "artifacts"})
	if err != nil {
		t.Fatal(err)
	}
	return &natsFixture{srv: srv, bucket: b, leases: leases, tr: &objstore.Transport{Store: objs, Prefix: "fleet"}}
}

// bucketHandle opens another handle on the fixture's bucket, on its own
// connection (another node).
func (fx *natsFixture) bucketHandle(t *testing.T) *natskv.Bucket {
	t.Helper()
	b, err := natskv.Open(t.Context(), fx.srv.Conn(t), natskv.Config{Bucket: "routes", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (fx *natsFixture) put(t testing.TB, key, value string) uint64 {
	t.Helper()
	rev, err := fx.bucket.Put(t.Context(), key, []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func (fx *natsFixture) last(t testing.TB) uint64 {
	t.Helper()
	st, err := fx.bucket.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.LastSeq
}

// scan returns the bucket's live entries as key → value.
func (fx *natsFixture) scan(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := fx.bucket.Scan(t.Context(), "", func(e slipstream.Entry) error {
		out[e.Key] = string(e.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// Bootstrap: node B starts from node A's artifact and receives exactly the
// updates after the artifact's cursor: 6 puts and 1 delete, the lowest at
// the cursor + 1. It ends equal to the bucket, without the deleted key.
func TestBootstrapReceivesExactlyTheTail(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			fx := newNATSFixture(t)
			a := startNode(t, fx.bucketHandle(t), be.open(t, filepath.Join(t.TempDir(), "a")))
			var last uint64
			for i := range 12 {
				last = fx.put(t, fmt.Sprintf("route.pre.%d", i), fmt.Sprintf("pre-%d", i))
			}
			a.waitCursor(t, last)
			r := &fleet.ExportRound{Lease: leaseNode(fx.leases, "node-a"), TTL: time.Minute, Follower: a.f,
				Transport: fx.tr, Key: roundKey, ScratchDir: t.TempDir(), Logger: quiet()}
			res, err := r.Run(t.Context())
			if err != nil || res.Outcome != fleet.Published {
				t.Fatalf("round: %+v, %v", res, err)
			}
			cursor := res.Manifest.Cursor.Rank()
			if cursor < last {
				t.Fatalf("export cursor %d below the last put %d", cursor, last)
			}
			mustEmpty(t, r.ScratchDir)

			for i := range 6 {
				last = fx.put(t, fmt.Sprintf("route.post.%d", i), fmt.Sprintf("post-%d", i))
			}
			if _, err := fx.bucket.Delete(t.Context(), "route.pre.0"); err != nil {
				t.Fatal(err)
			}
			last = fx.last(t)

			scratch, dest := t.TempDir(), filepath.Join(t.TempDir(), "b")
			m, err := fleet.ImportRemote(t.Context(), fx.tr, roundKey, scratch, dest, allArtifactBackends()...)
			if err != nil {
				t.Fatalf("ImportRemote: %v", err)
			}
			mustEmpty(t, scratch)
			if m.Cursor.Rank() != cursor || m.Backend != be.artifact.Name() {
				t.Fatalf("imported manifest %+v, want cursor %d backend %s", m, cursor, be.artifact.Name())
			}
			bStore := be.open(t, dest)
			if got := bStore.Cursor().Rank(); got != cursor {
				t.Fatalf("imported fold cursor %d, want %d", got, cursor)
			}
			b := startNode(t, fx.bucketHandle(t), bStore)
			b.waitCursor(t, last)
			got := b.deliveries()
			if len(got) != 7 {
				t.Fatalf("node B received %d updates, want exactly 7: %v", len(got), got)
			}
			lowest := slices.MinFunc(got, func(x, y slipstream.Update) int {
				return int(revOfVersion(x.Version)) - int(revOfVersion(y.Version))
			})
			if r := revOfVersion(lowest.Version); r != cursor+1 {
				t.Fatalf("lowest delivered revision %d, want the export cursor + 1 = %d", r, cursor+1)
			}
			if c := bStore.Cursor().Rank(); c != last {
				t.Fatalf("final cursor %d, want %d", c, last)
			}
			fold := dump(t, bStore)
			if d := diff(fold, fx.scan(t)); d != "" {
				t.Fatalf("node B differs from the bucket: %s", d)
			}
			if _, ok := fold["route.pre.0"]; ok {
				t.Fatal("route.pre.0, deleted after the export, is in node B's fold")
			}
		})
	}
}

func revOfVersion(v slipstream.Version) uint64 {
	r, _ := v.Uint64()
	return r
}

// A tampered payload uploads (upload checks only the manifest), but the
// remote import refuses it: ArtifactInvalid, no fold at dest, scratch
// empty. Progress reports rise to the payload's size.
func TestImportRemoteRejectsTamperedArtifact(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s := be.open(t, filepath.Join(t.TempDir(), "src"))
			var batch []slipstream.Update
			for i := range 50 {
				batch = append(batch, slipstream.Put(fmt.Sprintf("k.%02d", i), []byte(fmt.Sprintf("value-%d", i)), slipstream.VersionFromUint64(uint64(i+1))))
			}
			if err := s.Apply(batch, slipstream.CursorFromUint64(50)); err != nil {
				t.Fatal(err)
			}
			art := filepath.Join(t.TempDir(), "artifact")
			m, err := artifact.ExportStore(s, art)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			// Flip the middle byte of the largest file.
			largest := slices.MaxFunc(m.Files, func(x, y artifact.File) int { return int(x.Size) - int(y.Size) })
			p := filepath.Join(art, filepath.FromSlash(largest.Path))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			tr := &objstore.Transport{Store: mem.New()}
			if _, err := tr.Upload(t.Context(), roundKey, art); err != nil {
				t.Fatalf("upload of a tampered payload: %v", err)
			}

			scratch, dest := t.TempDir(), filepath.Join(t.TempDir(), "fold")
			var mu sync.Mutex
			var reports []fleet.Progress
			im := &fleet.Import{Transport: tr, Key: roundKey, ScratchDir: scratch, Backends: allArtifactBackends(),
				OnProgress: func(p fleet.Progress) {
					mu.Lock()
					reports = append(reports, p)
					mu.Unlock()
				}}
			_, err = im.Run(t.Context(), dest)
			if !errors.Is(err, slipstream.ErrArtifactInvalid) {
				t.Fatalf("Import.Run: %v, want ErrArtifactInvalid", err)
			}
			if _, serr := os.Stat(dest); !errors.Is(serr, os.ErrNotExist) {
				t.Fatalf("dest exists after a refused import: %v", serr)
			}
			mustEmpty(t, scratch)
			mustEmpty(t, filepath.Dir(dest))

			// The download phase reported its bytes, rising to the total.
			var done, total int64
			finished := false
			for _, p := range reports {
				if p.Phase == fleet.PhaseImport {
					if p.Finished {
						t.Fatalf("report %+v: a refused import reported its end", p)
					}
					continue
				}
				if p.Done < done {
					t.Fatalf("progress went backwards: %+v after %d", p, done)
				}
				done, total, finished = p.Done, p.Total, p.Finished
			}
			if !finished || done != total || total == 0 {
				t.Fatalf("last download report done=%d total=%d finished=%v", done, total, finished)
			}
		})
	}
}

// An artifact of a backend the caller does not accept is refused before
// anything is installed; accepting it imports it.
func TestImportRemoteBackendChoice(t *testing.T) {
	kv := memkv.New()
	puts(t, kv, "route", 5)
	n := liveNode(t, kv) // applog
	tr := &objstore.Transport{Store: mem.New()}
	r := &fleet.ExportRound{Lease: leaseNode(memkv.New(), "a"), TTL: time.Minute, Follower: n.f,
		Transport: tr, Key: roundKey, ScratchDir: t.TempDir(), Logger: quiet()}
	if res, err := r.Run(t.Context()); err != nil || res.Outcome != fleet.Published {
		t.Fatalf("round: %+v %v", res, err)
	}
	scratch, dest := t.TempDir(), filepath.Join(t.TempDir(), "fold")
	_, err := fleet.ImportRemote(t.Context(), tr, roundKey, scratch, dest, backends[1].artifact)
	if !errors.Is(err, slipstream.ErrArtifactInvalid) {
		t.Fatalf("import of an append-log artifact as pebble only: %v", err)
	}
	mustEmpty(t, scratch)
	m, err := fleet.ImportRemote(t.Context(), tr, roundKey, scratch, dest, backends[0].artifact)
	if err != nil || m.Cursor.Rank() != 5 {
		t.Fatalf("import: %+v %v", m, err)
	}
	s := backends[0].open(t, dest)
	defer s.Close()
	if got := len(dump(t, s)); got != 5 {
		t.Fatalf("imported fold holds %d keys, want 5", got)
	}
	// A key that was never published is ArtifactInvalid, not a crash.
	if _, err := fleet.ImportRemote(t.Context(), tr, "nope", scratch, filepath.Join(t.TempDir(), "x"), backends[0].artifact); !errors.Is(err, slipstream.ErrArtifactInvalid) {
		t.Fatalf("import of a missing key: %v", err)
	}
	mustEmpty(t, scratch)
}

// The import refuses an occupied destination before downloading anything,
// and imports across filesystems (no rename possible) by copying.
func TestImportRemoteDestination(t *testing.T) {
	kv := memkv.New()
	puts(t, kv, "route", 4)
	n := liveNode(t, kv)
	var rec objstoretest.Recorder
	store := mem.New()
	tr := &objstore.Transport{Store: rec.Wrap(store)}
	r := &fleet.ExportRound{Lease: leaseNode(memkv.New(), "a"), TTL: time.Minute, Follower: n.f,
		Transport: &objstore.Transport{Store: store}, Key: roundKey, ScratchDir: t.TempDir(), Logger: quiet()}
	if res, err := r.Run(t.Context()); err != nil || res.Outcome != fleet.Published {
		t.Fatalf("round: %+v %v", res, err)
	}

	occupied := t.TempDir()
	if err := os.WriteFile(filepath.Join(occupied, "stray"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	if _, err := fleet.ImportRemote(t.Context(), tr, roundKey, scratch, occupied, backends[0].artifact); !errors.Is(err, slipstream.ErrArtifactInvalid) {
		t.Fatalf("import into an occupied destination: %v", err)
	}
	if ops := rec.Ops(); len(ops) != 0 {
		t.Fatalf("the refused import reached the store: %v", ops)
	}
	if b, err := os.ReadFile(filepath.Join(occupied, "stray")); err != nil || string(b) != "x" {
		t.Fatal("the occupied destination was touched")
	}

	other := "/dev/shm"
	var a, b syscall.Stat_t
	if syscall.Stat(other, &a) != nil || syscall.Stat(scratch, &b) != nil || a.Dev == b.Dev {
		t.Skip("no second filesystem (/dev/shm) to import across")
	}
	dir, err := os.MkdirTemp(other, "fleet-import-")
	if err != nil {
		t.Skipf("cannot write to %s: %v", other, err)
	}
	defer os.RemoveAll(dir)
	dest := filepath.Join(dir, "fold")
	m, err := fleet.ImportRemote(t.Context(), tr, roundKey, scratch, dest, backends[0].artifact)
	if err != nil || m.Cursor.Rank() != 4 {
		t.Fatalf("import across filesystems: %+v %v", m, err)
	}
	s := backends[0].open(t, dest)
	if got := len(dump(t, s)); got != 4 {
		t.Fatalf("%d keys imported across filesystems, want 4", got)
	}
	mustEmpty(t, scratch)
}
