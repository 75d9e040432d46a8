package objstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/slipstream-kv/slipstream"
	"github.com/slipstream-kv/slipstream/applog"
	"github.com/slipstream-kv/slipstream/artifact"
	"github.com/slipstream-kv/slipstream/objstore"
	"github.com/slipstream-kv/slipstream/objstore/mem"
)

// exportAt writes an artifact of a fold holding n keys at cursor rev.
func exportAt(dir string, n int, rev uint64) error {
	fold, err := applog.Open(filepath.Join(dir, fmt.Sprintf("fold-%d", rev)), nil)
	if err != nil {
		return err
	}
	defer fold.Close()
	var batch []slipstream.Update
	for i := range n {
		batch = append(batch, slipstream.Put(fmt.Sprintf("route.%d", i), []byte("v"), slipstream.VersionFromUint64(uint64(i+1))))
	}
	if err := fold.Apply(batch, slipstream.CursorFromUint64(rev)); err != nil {
		return err
	}
	_, err = artifact.ExportStore(fold, filepath.Join(dir, fmt.Sprintf("artifact-%d", rev)))
	return err
}

// A publisher uploads two artifacts; an older one arriving late is
// superseded; a reader downloads the newest; prune drops the old payload.
func ExampleTransport() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "objstore-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	for _, rev := range []uint64{5, 9} {
		if err := exportAt(dir, int(rev)/2, rev); err != nil {
			panic(err)
		}
	}

	tr := &objstore.Transport{Store: mem.New(), Prefix: "fleet"}
	for _, rev := range []int{5, 9, 5} {
		res, err := tr.Upload(ctx, "edge/latest", filepath.Join(dir, fmt.Sprintf("artifact-%d", rev)))
		if err != nil {
			panic(err)
		}
		fmt.Printf("upload %d: %v (remote %v)\n", rev, res.Outcome, res.Remote)
	}

	m, err := tr.Download(ctx, "edge/latest", filepath.Join(dir, "fetched"))
	if err != nil {
		panic(err)
	}
	fmt.Println("downloaded cursor", m.Cursor, "backend", m.Backend)

	n, err := tr.Prune(ctx, "edge/latest", 0)
	if err != nil {
		panic(err)
	}
	fmt.Println("pruned", n)
	// Output:
	// upload 5: published (remote none)
	// upload 9: published (remote none)
	// upload 5: superseded (remote 9)
	// downloaded cursor 9 backend append-log
	// pruned 1
}
